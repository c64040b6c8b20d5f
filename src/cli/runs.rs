//! `c7sync runs`: run history, one run's plan, and approval of plans a guard held back.

use clap::{Args, Subcommand};
use serde::Serialize;

use super::output::{cell, print_json, print_report, table, Format, ReportFormat};
use super::{Context, Exit};
use crate::domain::RunId;
use crate::plan::ClaimChange;
use crate::store::{MemberEffect, PlannedChange, RunRecord};

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Recent runs, newest first
    List(ListArgs),
    /// One run: its outcome, counts, reason, and its changes (planned or applied)
    Show(ShowArgs),
    /// Apply a plan held back by a guard, if its source has not changed since
    Approve(ApproveArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this teamspace
    #[arg(long)]
    teamspace: Option<String>,
    /// At most this many runs
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The run id (from `runs list` or a command's output)
    run_id: i64,
    /// At most this many changes (all of them: 0)
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The id of the aborted run to apply
    run_id: i64,
    /// Output format
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
}

pub async fn run(context: &Context, command: &RunsCommand) -> anyhow::Result<Exit> {
    match command {
        RunsCommand::List(args) => list(context, args).await,
        RunsCommand::Show(args) => show(context, args).await,
        RunsCommand::Approve(args) => {
            let report = context.reconciler.approve(RunId(args.run_id)).await?;
            print_report(&report, args.format, serde_json::json!({ "approves_run_id": args.run_id }))?;
            Ok(Exit::for_outcome(report.outcome))
        }
    }
}

fn summary_row(run: &RunRecord) -> [String; 10] {
    let c = run.counts;
    [
        run.run_id.to_string(),
        run.teamspace.clone(),
        run.source.clone(),
        run.trigger.to_string(),
        run.outcome.to_string(),
        c.added.to_string(),
        c.removed.to_string(),
        c.updated.to_string(),
        run.started_at.to_string(),
        cell(run.reason.as_deref()).chars().take(60).collect(),
    ]
}

const SUMMARY_HEADER: [&str; 10] =
    ["RUN", "TEAMSPACE", "SOURCE", "TRIGGER", "OUTCOME", "ADDED", "REMOVED", "UPDATED", "STARTED", "REASON"];

async fn list(context: &Context, args: &ListArgs) -> anyhow::Result<Exit> {
    let teamspace_id = match &args.teamspace {
        Some(name) => Some(context.teamspace_id(name).await?),
        None => None,
    };
    let runs = context.store().list_runs(teamspace_id, args.limit.into()).await?;
    if args.format == Format::Json {
        print_json(&runs)?;
    } else {
        outln!("{}", table(SUMMARY_HEADER, runs.iter().map(summary_row)));
    }
    Ok(Exit::Success)
}

#[derive(Serialize)]
struct ShownRun<'a> {
    #[serde(flatten)]
    run: &'a RunRecord,
    /// Where `changes` comes from: the stored plan, or the audit of what was applied.
    changes_from: crate::admin::runs::ChangesFrom,
    changes_total: u64,
    changes: &'a [PlannedChange],
}

async fn show(context: &Context, args: &ShowArgs) -> anyhow::Result<Exit> {
    let run_id = RunId(args.run_id);
    let (run, _) = context.store().run(run_id).await?;
    let limit = match args.limit {
        0 => i64::MAX,
        n => i64::try_from(n).unwrap_or(i64::MAX),
    };
    let (shown, total, changes_from) = crate::admin::runs::changes(context.store(), &run, limit).await?;
    let shown = &shown[..];
    if args.format == Format::Json {
        print_json(&ShownRun { run: &run, changes_from, changes_total: total, changes: shown })?;
        return Ok(Exit::Success);
    }
    let c = run.counts;
    outln!(
        "run {}: {} {} ({}, {} input) — {}",
        run.run_id,
        run.teamspace,
        run.source,
        run.trigger,
        run.input,
        run.outcome
    );
    match run.finished_at {
        Some(finished) => outln!("  started {}, finished {finished}", run.started_at),
        None => outln!("  started {}, still running", run.started_at),
    }
    outln!("  added {}, removed {}, updated {}, unchanged {}", c.added, c.removed, c.updated, c.unchanged);
    if let Some(details) = &run.details {
        outln!("  details: {details}");
    }
    if let Some(reason) = &run.reason {
        outln!("  reason: {reason}");
    }
    if let Some(by) = run.approved_by_run_id {
        outln!("  approved by run {by}");
    }
    if let Some(held) = run.approves_run_id {
        outln!("  approves held run {held}");
    }
    if crate::admin::runs::is_held(&run) {
        outln!("  to apply this plan: c7sync runs approve {}", run.run_id);
    }
    if !shown.is_empty() {
        outln!();
        let rows = shown.iter().map(|ch| {
            let detail = match (&ch.previous_email, ch.claim) {
                (Some(previous), _) if previous != &ch.email => format!("email was {previous}"),
                (_, Some(ClaimChange::Gain)) if ch.member == MemberEffect::Unchanged => "claim added".to_owned(),
                (_, Some(ClaimChange::Drop)) if ch.member == MemberEffect::Unchanged => {
                    "claim dropped; other sources keep it".to_owned()
                }
                _ => String::new(),
            };
            [ch.member.to_string(), ch.oid.to_string(), ch.email.clone(), cell(ch.display_name.as_deref()), detail]
        });
        outln!("{}", table(["CHANGE", "OID", "EMAIL", "NAME", "DETAIL"], rows));
        if total > shown.len() as u64 {
            outln!("… {} more (raise --limit)", total - shown.len() as u64);
        }
    }
    Ok(Exit::Success)
}
