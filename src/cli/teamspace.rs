//! `c7sync teamspace list`: what is configured, how many members, how each source last ran.

use clap::{Args, Subcommand};

use super::output::{cell, print_json, table, Format};
use super::{Context, Exit};

#[derive(Debug, Subcommand)]
pub enum TeamspaceCommand {
    /// Teamspaces with member counts and the last run of each source
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

pub async fn run(context: &Context, command: &TeamspaceCommand) -> anyhow::Result<Exit> {
    let TeamspaceCommand::List(args) = command;
    let configured: Vec<&str> = context.config.teamspaces.iter().map(|t| t.name.as_str()).collect();
    let summaries: Vec<_> = context
        .store()
        .teamspace_summaries()
        .await?
        .into_iter()
        .filter(|s| configured.contains(&s.name.as_str()))
        .collect();
    if args.format == Format::Json {
        print_json(&summaries)?;
        return Ok(Exit::Success);
    }
    let mut rows = Vec::new();
    for summary in &summaries {
        if summary.sources.is_empty() {
            rows.push([
                summary.name.clone(),
                summary.tenant_id.clone(),
                summary.members.to_string(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
        }
        for (i, source) in summary.sources.iter().enumerate() {
            let first = i == 0;
            let last_run = match (&source.last_run_id, &source.last_outcome, &source.last_run_at) {
                (Some(id), Some(outcome), Some(at)) => format!("#{id} {outcome} {at}"),
                _ => "never".into(),
            };
            rows.push([
                if first { summary.name.clone() } else { String::new() },
                if first { summary.tenant_id.clone() } else { String::new() },
                if first { summary.members.to_string() } else { String::new() },
                source.source.clone(),
                source.claims.to_string(),
                cell(Some(&last_run)),
            ]);
        }
    }
    outln!("{}", table(["TEAMSPACE", "TENANT", "MEMBERS", "SOURCE", "CLAIMS", "LAST RUN"], rows));
    Ok(Exit::Success)
}
