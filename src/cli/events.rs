//! `c7sync events list|retry`: downstream delivery state of member events.

use clap::{Args, Subcommand, ValueEnum};

use super::output::{cell, print_json, table, Format};
use super::{Context, Exit};
use crate::store::{DeliveryStatus, EventFilter};

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Member events with their delivery state, oldest first
    List(ListArgs),
    /// Put a dead event back in line for delivery
    Retry(RetryArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Status {
    Pending,
    Delivered,
    Dead,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this teamspace
    #[arg(long)]
    teamspace: Option<String>,
    /// Only events in this state
    #[arg(long, value_enum)]
    status: Option<Status>,
    /// Only events with ids above this
    #[arg(long, value_name = "EVENT_ID")]
    after: Option<i64>,
    /// At most this many
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The event id (from `events list --status dead`)
    id: i64,
}

pub async fn run(context: &Context, command: &EventsCommand) -> anyhow::Result<Exit> {
    match command {
        EventsCommand::List(args) => list(context, args).await,
        EventsCommand::Retry(args) => {
            context.store().retry_event(args.id).await?;
            eprintln!("event {} is pending again; `c7sync serve` delivers it next", args.id);
            Ok(Exit::Success)
        }
    }
}

async fn list(context: &Context, args: &ListArgs) -> anyhow::Result<Exit> {
    let teamspace_id = match &args.teamspace {
        Some(name) => Some(context.teamspace_id(name).await?),
        None => None,
    };
    let status = args.status.map(|status| match status {
        Status::Pending => DeliveryStatus::Pending,
        Status::Delivered => DeliveryStatus::Delivered,
        Status::Dead => DeliveryStatus::Dead,
    });
    let filter = EventFilter { teamspace_id, status, after: args.after, limit: i64::from(args.limit) };
    let events = context.store().list_events(&filter).await?;
    if args.format == Format::Json {
        print_json(&events)?;
        return Ok(Exit::Success);
    }
    let rows = events.iter().map(|e| {
        [
            e.event.id.to_string(),
            e.event.teamspace.clone(),
            e.event.kind.clone(),
            e.event.oid.to_string(),
            e.event.email.clone(),
            e.status.to_string(),
            e.attempts.to_string(),
            cell(e.last_error.as_deref()),
        ]
    });
    outln!("{}", table(["ID", "TEAMSPACE", "TYPE", "OID", "EMAIL", "STATUS", "ATTEMPTS", "LAST ERROR"], rows));
    Ok(Exit::Success)
}
