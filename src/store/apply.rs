//! Writing runs inside a [`super::WriteSession`]: a plan's members, claims, run, audit and
//! outbox rows in multi-row statements (`bulk.rs`), or a run that changed nothing (dry run,
//! held, failed).

use serde::Serialize;

use super::engine::Tx;
use super::{postgres, sqlite, StoreError};
use crate::clock::Millis;
use crate::domain::{RunId, Trigger};
use crate::plan::{Attributes, Change, ClaimChange, MemberChange, Plan};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Changes committed.
    Applied,
    /// Planned only.
    DryRun,
    /// Held back by a guard; the plan is kept for `runs approve`.
    Aborted,
    /// The source could not be read completely; nothing changed.
    Failed,
}

impl Outcome {
    /// The stored and printed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::DryRun => "dry_run",
            Outcome::Aborted => "aborted",
            Outcome::Failed => "failed",
        }
    }
}

/// Where a stored run is: still running, or how it ended. The read side of [`Outcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Started and not finished (or its process died; see `fail_abandoned_runs`).
    Running,
    /// Finished with this outcome.
    #[serde(untagged)]
    Finished(Outcome),
}

impl RunStatus {
    /// The stored and printed name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Finished(outcome) => outcome.as_str(),
        }
    }

    /// Whether the run ended with `outcome`.
    pub fn is(self, outcome: Outcome) -> bool {
        self == RunStatus::Finished(outcome)
    }
}

/// `status == "applied"`, as stored and printed.
impl PartialEq<&str> for RunStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RunStatus {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let outcome = match text {
            "running" => return Ok(RunStatus::Running),
            "applied" => Outcome::Applied,
            "dry_run" => Outcome::DryRun,
            "aborted" => Outcome::Aborted,
            "failed" => Outcome::Failed,
            other => return Err(format!("unknown run outcome `{other}`")),
        };
        Ok(RunStatus::Finished(outcome))
    }
}

/// What the source handed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunInput {
    /// A complete listing.
    Snapshot,
    /// Individual changes.
    Deltas,
}

/// Everything known about a run before it is written.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// Teamspace row id.
    pub teamspace_id: i64,
    /// Source row id.
    pub source_id: i64,
    /// What started it: `import`, `sync`, `schedule`, `manual`, `scim`, `approve`.
    pub trigger: Trigger,
    /// Snapshot or deltas.
    pub input: RunInput,
    /// When it started.
    pub started_at: Millis,
    /// The source's claims version the plan was made against.
    pub source_version: i64,
    /// For an approval: the held run it applies.
    pub approves: Option<RunId>,
    /// Source-specific facts (file, rows read, invalid rows), as JSON.
    pub details: Option<serde_json::Value>,
    /// For a snapshot run: its digest, remembered on the source once applied.
    pub snapshot_digest: Option<[u8; 16]>,
    /// The `running` run recorded when it started (`WriteSession::start_run`), which this
    /// run completes; `None` for runs recorded only once done (SCIM, manual, approvals).
    pub started: Option<RunId>,
}

/// The stored name of a run's input.
pub(super) fn run_input(input: RunInput) -> &'static str {
    match input {
        RunInput::Snapshot => "snapshot",
        RunInput::Deltas => "deltas",
    }
}

/// The stored name of a claim change, and back.
const CLAIM_WORDS: [(ClaimChange, &str); 3] =
    [(ClaimChange::Gain, "gain"), (ClaimChange::Keep, "keep"), (ClaimChange::Drop, "drop")];

pub(super) fn claim_word(change: ClaimChange) -> &'static str {
    CLAIM_WORDS.iter().find(|(c, _)| *c == change).map_or("keep", |(_, word)| word)
}

pub(super) fn claim_of(word: &str) -> Result<ClaimChange, StoreError> {
    CLAIM_WORDS
        .iter()
        .find(|(_, w)| *w == word)
        .map(|(change, _)| *change)
        .ok_or_else(|| StoreError::corrupt("planned_changes.claim", format!("unknown claim change `{word}`")))
}

pub(super) fn previous(change: &Change) -> (Option<&str>, Option<&str>) {
    match &change.member {
        MemberChange::Update { previous: Some(previous) } => {
            (Some(previous.email.as_str()), previous.display_name.as_deref())
        }
        _ => (None, None),
    }
}

/// The attributes a row is recorded with; `WriteSession::resolve_attributes` guarantees them.
pub(super) fn recorded(change: &Change) -> Result<&Attributes, StoreError> {
    change.attributes.as_ref().ok_or_else(|| {
        StoreError::corrupt("plan", format!("{}: attributes were not resolved before recording", change.oid))
    })
}

/// Inserts the finished run, or completes the `running` one it started as. Completing checks
/// the run is still `running`: a run marked failed meanwhile (its owner judged gone) must not
/// come back to life with changes.
async fn insert_run(
    tx: &mut Tx,
    run: &NewRun,
    outcome: Outcome,
    plan: Option<&Plan>,
    reason: Option<&str>,
    now: Millis,
) -> Result<RunId, StoreError> {
    let counts = plan.map(Plan::counts).unwrap_or_default();
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let sql = match run.started {
        None => {
            "INSERT INTO runs (teamspace_id, source_id, trigger, input, outcome, started_at, finished_at, \
             added, removed, updated, unchanged, reason, source_version, approves_run_id, details) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id"
        }
        Some(_) => {
            "UPDATE runs SET teamspace_id = $1, source_id = $2, trigger = $3, input = $4, outcome = $5, \
             started_at = $6, finished_at = $7, added = $8, removed = $9, updated = $10, unchanged = $11, \
             reason = $12, source_version = $13, approves_run_id = $14, details = $15, owner = NULL \
             WHERE id = $16 AND outcome = 'running' RETURNING id"
        }
    };
    let details = run.details.as_ref().map(|d| d.to_string());
    let id: Option<i64> = on_tx!(tx, c => {
        let query = sqlx::query_scalar(sql)
            .bind(run.teamspace_id)
            .bind(run.source_id)
            .bind(run.trigger.as_str())
            .bind(run_input(run.input))
            .bind(outcome.as_str())
            .bind(run.started_at.0)
            .bind(now.0)
            .bind(count(counts.added))
            .bind(count(counts.removed))
            .bind(count(counts.updated))
            .bind(count(counts.unchanged))
            .bind(reason)
            .bind(run.source_version)
            .bind(run.approves.map(|r| r.0))
            .bind(details.as_deref());
        let query = match run.started {
            Some(started) => query.bind(started.0),
            None => query,
        };
        query.fetch_optional(&mut *c).await
    })?;
    match (id, run.started) {
        (Some(id), _) => Ok(RunId(id)),
        (None, Some(started)) => Err(StoreError::Refused(format!(
            "run {started} is no longer running (another c7sync process marked it failed); nothing was changed"
        ))),
        (None, None) => Err(StoreError::corrupt("runs", "an insert returned no id")),
    }
}

/// Writes the run row and, for an applied run, every member change: the body of
/// [`super::WriteSession::apply`].
pub(super) async fn apply_plan(tx: &mut Tx, run: &NewRun, plan: &Plan, now: Millis) -> Result<RunId, StoreError> {
    if !plan.is_empty() {
        on_tx!(tx, c => sqlx::query("UPDATE teamspaces SET version = version + 1 WHERE id = $1")
            .bind(run.teamspace_id)
            .execute(&mut *c)
            .await.map(|done| done.rows_affected()))?;
    }
    if let Some(digest) = run.snapshot_digest {
        on_tx!(tx, c => sqlx::query(
            "UPDATE sources SET snapshot_digest = $1, \
             snapshot_version = (SELECT version FROM teamspaces WHERE id = $2) WHERE id = $3",
        )
        .bind(&digest[..])
        .bind(run.teamspace_id)
        .bind(run.source_id)
        .execute(&mut *c)
        .await.map(|done| done.rows_affected()))?;
    }
    if plan.changes.iter().any(|c| c.claim != ClaimChange::Keep) {
        on_tx!(tx, c => sqlx::query("UPDATE sources SET version = version + 1 WHERE id = $1")
            .bind(run.source_id)
            .execute(&mut *c)
            .await.map(|done| done.rows_affected()))?;
    }
    let run_id = insert_run(tx, run, Outcome::Applied, Some(plan), None, now).await?;
    if let Some(held) = run.approves {
        let marked = on_tx!(tx, c => sqlx::query(
            "UPDATE runs SET approved_by_run_id = $1 WHERE id = $2 AND approved_by_run_id IS NULL"
        )
        .bind(run_id.0)
        .bind(held.0)
        .execute(&mut *c)
        .await
        .map(|done| done.rows_affected()))?;
        if marked != 1 {
            return Err(StoreError::Refused(format!("run {held} has already been approved")));
        }
    }
    let stamp = RunStamp { teamspace_id: run.teamspace_id, source_id: run.source_id, run_id, now };
    let events = match tx {
        Tx::Sqlite(tx) => {
            sqlite::bulk::with_connection(tx, plan.changes.len(), |c| sqlite::write::members(c, stamp, plan)).await?
        }
        Tx::Postgres(tx) => postgres::write::members(tx, stamp, plan).await?,
    };
    if let Some((first, last)) = events {
        on_tx!(tx, c => sqlx::query("UPDATE runs SET first_event_id = $1, last_event_id = $2 WHERE id = $3")
            .bind(first)
            .bind(last)
            .bind(run_id.0)
            .execute(&mut *c)
            .await.map(|done| done.rows_affected()))?;
    }
    Ok(run_id)
}

/// Writes a run that changes no member. Dry runs and held runs keep their plan (for
/// `runs show` and `runs approve`); failed runs keep only their reason.
pub(super) async fn record(
    tx: &mut Tx,
    run: &NewRun,
    outcome: Outcome,
    plan: Option<&Plan>,
    reason: Option<&str>,
    now: Millis,
) -> Result<RunId, StoreError> {
    let run_id = insert_run(tx, run, outcome, plan, reason, now).await?;
    let Some(plan) = plan else { return Ok(run_id) };
    match tx {
        Tx::Sqlite(tx) => {
            sqlite::bulk::with_connection(tx, plan.changes.len(), |c| sqlite::write::planned_changes(c, run_id, plan))
                .await?
        }
        Tx::Postgres(tx) => postgres::write::planned_changes(tx, run_id, plan).await?,
    }
    Ok(run_id)
}

/// What every row of one applied run shares.
#[derive(Clone, Copy)]
pub(super) struct RunStamp {
    pub(super) teamspace_id: i64,
    pub(super) source_id: i64,
    pub(super) run_id: RunId,
    pub(super) now: Millis,
}
