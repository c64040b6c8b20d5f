//! Writing runs inside a [`super::WriteSession`]: a plan's members, claims, run and audit
//! rows in multi-row statements (`bulk.rs`), or a run that changed nothing (dry run, held,
//! failed). Its events are delivered from the audit rows (`events.rs`).

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

/// A statement's argument, bound the same way on either engine.
pub(super) enum Arg<'a> {
    /// An integer, or NULL.
    Int(Option<i64>),
    /// Text, or NULL.
    Text(Option<&'a str>),
    /// Bytes.
    Blob(&'a [u8]),
}

/// What writing a run asks of an engine: its few keyed statements (the SQL below, the same on
/// both), and the plan's rows in bulk, which each engine writes its own way. The order of the
/// steps is written once, in [`write_applied`] and [`write_recorded`].
pub(super) trait RunRows {
    /// Runs `sql` with `args`; returns how many rows it changed.
    async fn execute(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<u64, StoreError>;
    /// Runs `sql … RETURNING id` with `args`; returns the id, if a row was written.
    async fn returning_id(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<Option<i64>, StoreError>;
    /// The claim, member and audit rows of `plan`; returns the audit ids written.
    async fn members(&mut self, stamp: RunStamp, plan: &Plan) -> Result<Option<(i64, i64)>, StoreError>;
    /// A kept plan's rows, for `runs show` and `runs approve`.
    async fn planned_changes(&mut self, run_id: RunId, plan: &Plan) -> Result<(), StoreError>;
}

const INSERT_RUN: &str = "INSERT INTO runs (teamspace_id, source_id, trigger, input, outcome, started_at, \
     finished_at, added, removed, updated, unchanged, reason, source_version, approves_run_id, details) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id";
/// Completes a `running` run: only while it is still running, since a run marked failed
/// meanwhile (its owner judged gone) must not come back to life with changes.
const COMPLETE_RUN: &str = "UPDATE runs SET teamspace_id = $1, source_id = $2, trigger = $3, input = $4, \
     outcome = $5, started_at = $6, finished_at = $7, added = $8, removed = $9, updated = $10, unchanged = $11, \
     reason = $12, source_version = $13, approves_run_id = $14, details = $15, owner = NULL \
     WHERE id = $16 AND outcome = 'running' RETURNING id";
const BUMP_TEAMSPACE: &str = "UPDATE teamspaces SET version = version + 1 WHERE id = $1";
const REMEMBER_SNAPSHOT: &str = "UPDATE sources SET snapshot_digest = $1, \
     snapshot_version = (SELECT version FROM teamspaces WHERE id = $2) WHERE id = $3";
const BUMP_SOURCE: &str = "UPDATE sources SET version = version + 1 WHERE id = $1";
const MARK_APPROVED: &str = "UPDATE runs SET approved_by_run_id = $1 WHERE id = $2 AND approved_by_run_id IS NULL";
const EVENT_RANGE: &str = "UPDATE runs SET first_event_id = $1, last_event_id = $2 WHERE id = $3";

/// How a run ended, as its row records it.
#[derive(Debug, Clone, Copy)]
pub struct RunEnd<'a> {
    /// The outcome.
    pub outcome: Outcome,
    /// The plan: its counts go on the row, and a dry run or held run keeps it whole.
    pub plan: Option<&'a Plan>,
    /// Why it was aborted or failed.
    pub reason: Option<&'a str>,
}

/// Inserts the finished run, or completes the `running` one it started as.
async fn insert_run(rows: &mut impl RunRows, run: &NewRun, end: RunEnd<'_>, now: Millis) -> Result<RunId, StoreError> {
    let RunEnd { outcome, plan, reason } = end;
    let counts = plan.map(Plan::counts).unwrap_or_default();
    let count = |n: u64| Arg::Int(Some(i64::try_from(n).unwrap_or(i64::MAX)));
    let details = run.details.as_ref().map(|d| d.to_string());
    let mut args = vec![
        Arg::Int(Some(run.teamspace_id)),
        Arg::Int(Some(run.source_id)),
        Arg::Text(Some(run.trigger.as_str())),
        Arg::Text(Some(run_input(run.input))),
        Arg::Text(Some(outcome.as_str())),
        Arg::Int(Some(run.started_at.0)),
        Arg::Int(Some(now.0)),
        count(counts.added),
        count(counts.removed),
        count(counts.updated),
        count(counts.unchanged),
        Arg::Text(reason),
        Arg::Int(Some(run.source_version)),
        Arg::Int(run.approves.map(|r| r.0)),
        Arg::Text(details.as_deref()),
    ];
    let sql = match run.started {
        None => INSERT_RUN,
        Some(started) => {
            args.push(Arg::Int(Some(started.0)));
            COMPLETE_RUN
        }
    };
    match (rows.returning_id(sql, &args).await?, run.started) {
        (Some(id), _) => Ok(RunId(id)),
        (None, Some(started)) => Err(StoreError::Refused(format!(
            "run {started} is no longer running (another c7sync process marked it failed); nothing was changed"
        ))),
        (None, None) => Err(StoreError::corrupt("runs", "an insert returned no id")),
    }
}

/// Writes the run row and, for an applied run, every member change: the body of
/// [`super::WriteSession::apply`]. On SQLite the whole of it is one hand-off to the
/// connection's thread (for a SCIM batch, what each statement's hand-off cost was more than
/// its work).
pub(super) async fn apply_plan(tx: &mut Tx, run: &NewRun, plan: &Plan, now: Millis) -> Result<RunId, StoreError> {
    match tx {
        Tx::Sqlite(tx) => {
            sqlite::bulk::with_connection(tx, plan.changes.len(), |c| {
                settle(write_applied(&mut sqlite::write::SqliteRows(c), run, plan, now))
            })
            .await
        }
        Tx::Postgres(tx) => write_applied(&mut postgres::write::PostgresRows(tx), run, plan, now).await,
    }
}

/// Writes a run that changes no member. Dry runs and held runs keep their plan (for
/// `runs show` and `runs approve`); failed runs keep only their reason.
pub(super) async fn record(tx: &mut Tx, run: &NewRun, end: RunEnd<'_>, now: Millis) -> Result<RunId, StoreError> {
    let rows = end.plan.map_or(0, |p| p.changes.len());
    match tx {
        Tx::Sqlite(tx) => {
            sqlite::bulk::with_connection(tx, rows, |c| {
                settle(write_recorded(&mut sqlite::write::SqliteRows(c), run, end, now))
            })
            .await
        }
        Tx::Postgres(tx) => write_recorded(&mut postgres::write::PostgresRows(tx), run, end, now).await,
    }
}

/// The steps of an applied run, in order.
async fn write_applied(rows: &mut impl RunRows, run: &NewRun, plan: &Plan, now: Millis) -> Result<RunId, StoreError> {
    if !plan.is_empty() {
        rows.execute(BUMP_TEAMSPACE, &[Arg::Int(Some(run.teamspace_id))]).await?;
    }
    if let Some(digest) = run.snapshot_digest {
        let args = [Arg::Blob(&digest), Arg::Int(Some(run.teamspace_id)), Arg::Int(Some(run.source_id))];
        rows.execute(REMEMBER_SNAPSHOT, &args).await?;
    }
    if plan.changes.iter().any(|c| c.claim != ClaimChange::Keep) {
        rows.execute(BUMP_SOURCE, &[Arg::Int(Some(run.source_id))]).await?;
    }
    let end = RunEnd { outcome: Outcome::Applied, plan: Some(plan), reason: None };
    let run_id = insert_run(rows, run, end, now).await?;
    if let Some(held) = run.approves {
        let marked = rows.execute(MARK_APPROVED, &[Arg::Int(Some(run_id.0)), Arg::Int(Some(held.0))]).await?;
        if marked != 1 {
            return Err(StoreError::Refused(format!("run {held} has already been approved")));
        }
    }
    let stamp = RunStamp { teamspace_id: run.teamspace_id, source_id: run.source_id, run_id, now };
    if let Some((first, last)) = rows.members(stamp, plan).await? {
        rows.execute(EVENT_RANGE, &[Arg::Int(Some(first)), Arg::Int(Some(last)), Arg::Int(Some(run_id.0))]).await?;
    }
    Ok(run_id)
}

/// The steps of a run that changes no member.
async fn write_recorded(
    rows: &mut impl RunRows,
    run: &NewRun,
    end: RunEnd<'_>,
    now: Millis,
) -> Result<RunId, StoreError> {
    let run_id = insert_run(rows, run, end, now).await?;
    if let Some(plan) = end.plan {
        rows.planned_changes(run_id, plan).await?;
    }
    Ok(run_id)
}

/// The result of a write on SQLite's connection, whose steps never wait (`sqlite::write::SqliteRows`
/// does its work when called), so one poll finishes it.
fn settle<T>(write: impl std::future::Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    use futures_util::FutureExt;
    write
        .now_or_never()
        .unwrap_or_else(|| Err(StoreError::corrupt("runs", "a SQLite write waited, which it never does")))
}

/// What every row of one applied run shares.
#[derive(Clone, Copy)]
pub(super) struct RunStamp {
    pub(super) teamspace_id: i64,
    pub(super) source_id: i64,
    pub(super) run_id: RunId,
    pub(super) now: Millis,
}
