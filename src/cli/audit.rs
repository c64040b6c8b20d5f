//! `c7sync audit`: every member change, with the run and source that made it.

use clap::Args;

use super::output::{cell, print_json, table, Format};
use super::{Context, Exit, UsageError};
use crate::clock::Millis;
use crate::domain::Oid;
use crate::store::AuditFilter;

/// Arguments of `c7sync audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only this teamspace
    #[arg(long)]
    teamspace: Option<String>,
    /// Only this member (Entra object id)
    #[arg(long)]
    oid: Option<String>,
    /// Only changes at or after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z)
    #[arg(long)]
    since: Option<String>,
    /// At most this many events (the most recent)
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

pub async fn run(context: &Context, args: &AuditArgs) -> anyhow::Result<Exit> {
    let teamspace_id = match &args.teamspace {
        Some(name) => Some(context.teamspace_id(name).await?),
        None => None,
    };
    let oid =
        args.oid.as_deref().map(|o| o.parse::<Oid>().map_err(|e| UsageError(format!("--oid: {e}")))).transpose()?;
    let since = args
        .since
        .as_deref()
        .map(|s| Millis::parse_rfc3339(s).map_err(|e| UsageError(format!("--since: {e}"))))
        .transpose()?;
    let events = context
        .store()
        .audit(&AuditFilter { teamspace_id, oid, since, limit: args.limit.into(), ..AuditFilter::default() })
        .await?;
    if args.format == Format::Json {
        print_json(&events)?;
        return Ok(Exit::Success);
    }
    let rows = events.iter().map(|e| {
        let detail = match (&e.previous_email, &e.previous_display_name) {
            (Some(email), _) if email != &e.email => format!("email was {email}"),
            (_, Some(name)) if Some(name) != e.display_name.as_ref() => format!("name was {name}"),
            _ => String::new(),
        };
        [
            e.occurred_at.to_string(),
            e.teamspace.clone(),
            e.run_id.to_string(),
            e.source.clone(),
            e.action.to_string(),
            e.oid.to_string(),
            e.email.clone(),
            cell(e.display_name.as_deref()),
            detail,
        ]
    });
    outln!("{}", table(["TIME", "TEAMSPACE", "RUN", "SOURCE", "ACTION", "OID", "EMAIL", "NAME", "DETAIL"], rows));
    Ok(Exit::Success)
}
