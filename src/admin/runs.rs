//! What a run changed or would change: an applied run's audit events, or the stored plan of
//! any other (a dry run, a held run, a failed one).

use serde::Serialize;

use crate::plan::preview::{plan_preview, PreviewRow};
use crate::reconcile::RunReport;
use crate::store::{Outcome, PlannedChange, RunRecord, Store, StoreError};

/// A run report as `--format json` prints it and the API answers it: the report, the fields the
/// caller adds (`extra`, an object or a struct), and the first changes of its plan.
#[derive(Serialize)]
pub struct ReportJson<'a, E: Serialize> {
    #[serde(flatten)]
    report: &'a RunReport,
    #[serde(flatten)]
    extra: E,
    changes: Vec<PreviewRow<'a>>,
}

impl<'a, E: Serialize> ReportJson<'a, E> {
    /// `report` with `extra` and its plan's preview.
    pub fn new(report: &'a RunReport, extra: E) -> Self {
        ReportJson { report, extra, changes: plan_preview(&report.plan.changes) }
    }
}

/// Where a run's changes were read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangesFrom {
    /// The audit events an applied run wrote.
    Audit,
    /// The plan a run stored.
    Plan,
}

/// The first `limit` changes of `run`, how many there are, and where they come from.
pub async fn changes(
    store: &Store,
    run: &RunRecord,
    limit: i64,
) -> Result<(Vec<PlannedChange>, u64, ChangesFrom), StoreError> {
    if !run.outcome.is(Outcome::Applied) {
        let (changes, total) = store.planned_changes(run.run_id, limit).await?;
        return Ok((changes, total, ChangesFrom::Plan));
    }
    let (events, total) = store.audit_of_run(run.run_id, limit).await?;
    let changes = events
        .into_iter()
        .map(|e| PlannedChange {
            oid: e.oid,
            claim: None,
            member: e.action.into(),
            email: e.email,
            display_name: e.display_name,
            previous_email: e.previous_email,
            previous_display_name: e.previous_display_name,
        })
        .collect();
    Ok((changes, total, ChangesFrom::Audit))
}

/// Whether `run` is held by a guard and nobody has approved it yet.
pub fn is_held(run: &RunRecord) -> bool {
    run.outcome.is(Outcome::Aborted) && run.approved_by_run_id.is_none()
}
