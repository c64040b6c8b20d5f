//! `c7sync sync`: run configured sources now, once each, and report every run.

use clap::Args;

use super::output::{print_report, ReportFormat};
use super::{Context, Exit, UsageError};
use crate::domain::Trigger;
use crate::reconcile::RunOptions;
use crate::sync::{run_source, SourceState};

/// Arguments of `c7sync sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Only this teamspace
    #[arg(long)]
    teamspace: Option<String>,
    /// Only sources with this id (`developers` for graph:developers)
    #[arg(long, value_name = "ID")]
    source: Option<String>,
    /// Plan and record the runs; change nothing
    #[arg(long)]
    dry_run: bool,
    /// Let the runs remove more members than max_removals
    #[arg(long)]
    allow_mass_removal: bool,
    /// Output format (json: one object per run, one per line)
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
}

/// Severity when several runs end differently: the first of these that occurs is the exit code.
const SEVERITY: [Exit; 3] = [Exit::Failure, Exit::InvalidInput, Exit::Aborted];

pub async fn run(context: &Context, args: &SyncArgs) -> anyhow::Result<Exit> {
    if let Some(name) = &args.teamspace {
        context.config.teamspace(name)?;
    }
    let mut exits = Vec::new();
    let mut matched = 0;
    for teamspace in &context.config.teamspaces {
        if args.teamspace.as_deref().is_some_and(|t| t != teamspace.name.as_str()) {
            continue;
        }
        for source in &teamspace.sources {
            if args.source.as_deref().is_some_and(|id| id != source.name.id()) {
                continue;
            }
            let options = RunOptions { dry_run: args.dry_run, allow_mass_removal: args.allow_mass_removal };
            let mut state = SourceState::default();
            let Some(run) =
                run_source(&context.reconciler, teamspace, source, Trigger::Sync, options, &mut state).await?
            else {
                // SCIM is pushed to `c7sync serve`; there is nothing to pull.
                continue;
            };
            matched += 1;
            print_report(&run.report, args.format, run.extra)?;
            exits.push(if run.rejected_for_invalid_rows {
                Exit::InvalidInput
            } else {
                Exit::for_outcome(run.report.outcome)
            });
        }
    }
    if matched == 0 {
        return Err(UsageError("no configured graph or csv source matches; see `c7sync teamspace list`".into()).into());
    }
    Ok(SEVERITY.into_iter().find(|s| exits.contains(s)).unwrap_or(Exit::Success))
}
