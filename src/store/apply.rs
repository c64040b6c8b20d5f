//! Writing runs inside a [`super::WriteSession`]: a plan's members, claims, run, audit and
//! outbox rows in multi-row statements (`bulk.rs`), or a run that changed nothing (dry run,
//! held, failed).

use serde::Serialize;
use sqlx::{Sqlite, Transaction};

use rusqlite::{params, Connection};

use super::bulk::{with_connection, ChunkedInsert};
use super::words::{AuditAction, MemberEffect};
use super::StoreError;
use crate::clock::Millis;
use crate::domain::fingerprint;
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

fn claim_word(change: ClaimChange) -> &'static str {
    CLAIM_WORDS.iter().find(|(c, _)| *c == change).map_or("keep", |(_, word)| word)
}

pub(super) fn claim_of(word: &str) -> Result<ClaimChange, StoreError> {
    CLAIM_WORDS
        .iter()
        .find(|(_, w)| *w == word)
        .map(|(change, _)| *change)
        .ok_or_else(|| StoreError::corrupt("planned_changes.claim", format!("unknown claim change `{word}`")))
}

fn previous(change: &Change) -> (Option<&str>, Option<&str>) {
    match &change.member {
        MemberChange::Update { previous: Some(previous) } => {
            (Some(previous.email.as_str()), previous.display_name.as_deref())
        }
        _ => (None, None),
    }
}

/// The attributes a row is recorded with; `WriteSession::resolve_attributes` guarantees them.
fn recorded(change: &Change) -> Result<&Attributes, StoreError> {
    change.attributes.as_ref().ok_or_else(|| {
        StoreError::corrupt("plan", format!("{}: attributes were not resolved before recording", change.oid))
    })
}

pub(super) type Tx = Transaction<'static, Sqlite>;

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
        .bind(run.details.as_ref().map(|d| d.to_string()));
    let query = match run.started {
        Some(started) => query.bind(started.0),
        None => query,
    };
    let id: Option<i64> = query.fetch_optional(&mut **tx).await?;
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
        sqlx::query("UPDATE teamspaces SET version = version + 1 WHERE id = $1")
            .bind(run.teamspace_id)
            .execute(&mut **tx)
            .await?;
    }
    if let Some(digest) = run.snapshot_digest {
        sqlx::query(
            "UPDATE sources SET snapshot_digest = $1, \
             snapshot_version = (SELECT version FROM teamspaces WHERE id = $2) WHERE id = $3",
        )
        .bind(&digest[..])
        .bind(run.teamspace_id)
        .bind(run.source_id)
        .execute(&mut **tx)
        .await?;
    }
    if plan.changes.iter().any(|c| c.claim != ClaimChange::Keep) {
        sqlx::query("UPDATE sources SET version = version + 1 WHERE id = $1")
            .bind(run.source_id)
            .execute(&mut **tx)
            .await?;
    }
    let run_id = insert_run(tx, run, Outcome::Applied, Some(plan), None, now).await?;
    if let Some(held) = run.approves {
        let marked =
            sqlx::query("UPDATE runs SET approved_by_run_id = $1 WHERE id = $2 AND approved_by_run_id IS NULL")
                .bind(run_id.0)
                .bind(held.0)
                .execute(&mut **tx)
                .await?;
        if marked.rows_affected() != 1 {
            return Err(StoreError::Refused(format!("run {held} has already been approved")));
        }
    }
    let scope = Scope { teamspace_id: run.teamspace_id, source_id: run.source_id, run_id, now };
    if let Some((first, last)) = with_connection(tx, |connection| write_members(connection, scope, plan)).await? {
        sqlx::query("UPDATE runs SET first_event_id = $1, last_event_id = $2 WHERE id = $3")
            .bind(first)
            .bind(last)
            .bind(run_id.0)
            .execute(&mut **tx)
            .await?;
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
    with_connection(tx, |connection| write_planned_changes(connection, run_id, plan)).await?;
    Ok(run_id)
}

/// The planned changes of a run that is kept for `runs show` and `runs approve`, by position.
fn write_planned_changes(connection: &Connection, run_id: RunId, plan: &Plan) -> Result<(), StoreError> {
    let mut insert = ChunkedInsert::prepare(
        connection,
        "planned_changes",
        "run_id, seq, oid, claim, member, email, display_name, previous_email, previous_display_name",
        plan.changes.len(),
    )?;
    for (seq, change) in (0_i64..).zip(&plan.changes) {
        let (previous_email, previous_name) = previous(change);
        let attributes = recorded(change)?;
        insert.push(|row| {
            row.value(run_id.0)?
                .value(seq)?
                .value(&change.oid.to_bytes()[..])?
                .value(claim_word(change.claim))?
                .value(<&str>::from(MemberEffect::from(&change.member)))?
                .value(attributes.email.as_str())?
                .value(attributes.display_name.as_deref())?
                .value(previous_email)?
                .value(previous_name)?;
            Ok::<_, StoreError>(())
        })?;
    }
    insert.finish()
}

/// What every row of one applied run shares.
#[derive(Clone, Copy)]
struct Scope {
    teamspace_id: i64,
    source_id: i64,
    run_id: RunId,
    now: Millis,
}

/// The claim, member, audit and outbox rows of one plan, in plan (oid) order, so each B-tree
/// is appended to rather than split. Added rows go in multi-row chunks; updates and removals,
/// rare and keyed, one statement each. Event ids are assigned here (the session holds the
/// write lock, so nobody else takes ids meanwhile); returns the range written, if any.
fn write_members(connection: &Connection, scope: Scope, plan: &Plan) -> Result<Option<(i64, i64)>, StoreError> {
    let Scope { teamspace_id, source_id, run_id, now } = scope;
    let (run_id, now) = (run_id.0, now.0);
    let gained = plan.changes.iter().filter(|c| c.claim == ClaimChange::Gain).count();
    let added = plan.changes.iter().filter(|c| c.member == MemberChange::Add).count();
    let events = plan.changes.iter().filter(|c| c.member != MemberChange::Unchanged).count();

    let mut insert_claims =
        ChunkedInsert::prepare(connection, "claims", "teamspace_id, oid, source_id, created_at", gained)?;
    let mut delete_claim =
        connection.prepare("DELETE FROM claims WHERE teamspace_id = ?1 AND oid = ?2 AND source_id = ?3")?;
    let mut insert_members = ChunkedInsert::prepare(
        connection,
        "members",
        "teamspace_id, oid, email, display_name, email_hash, name_hash, attrs_source_id, created_at, updated_at",
        added,
    )?;
    let mut update_member = connection.prepare(
        "UPDATE members SET email = ?3, display_name = ?4, email_hash = ?5, name_hash = ?6, attrs_source_id = ?7, \
         updated_at = ?8 WHERE teamspace_id = ?1 AND oid = ?2",
    )?;
    let mut delete_member = connection.prepare("DELETE FROM members WHERE teamspace_id = ?1 AND oid = ?2")?;
    let mut insert_events = ChunkedInsert::prepare(
        connection,
        "audit_events",
        "id, teamspace_id, run_id, source_id, action, oid, email, display_name, role, previous_email, \
         previous_display_name, occurred_at",
        events,
    )?;
    let first_event = next_event_id(connection)?;
    let mut next_event = first_event;

    for change in &plan.changes {
        let oid = change.oid.to_bytes();
        let oid = &oid[..];
        match change.claim {
            ClaimChange::Gain => insert_claims.push(|row| {
                row.value(teamspace_id)?.value(oid)?.value(source_id)?.value(now)?;
                Ok::<_, StoreError>(())
            })?,
            ClaimChange::Drop => {
                delete_claim.execute(params![teamspace_id, oid, source_id])?;
            }
            ClaimChange::Keep => {}
        }
        if change.member == MemberChange::Unchanged {
            continue;
        }
        let attributes = recorded(change)?;
        let email = attributes.email.as_str();
        let name = attributes.display_name.as_deref();
        let action = match change.member {
            MemberChange::Add => {
                insert_members.push(|row| {
                    row.value(teamspace_id)?
                        .value(oid)?
                        .value(email)?
                        .value(name)?
                        .value(fingerprint::email(&attributes.email))?
                        .value(name.map(fingerprint::name))?
                        .value(source_id)?
                        .value(now)?
                        .value(now)?;
                    Ok::<_, StoreError>(())
                })?;
                AuditAction::Added
            }
            MemberChange::Update { .. } => {
                update_member.execute(params![
                    teamspace_id,
                    oid,
                    email,
                    name,
                    fingerprint::email(&attributes.email),
                    name.map(fingerprint::name),
                    source_id,
                    now
                ])?;
                AuditAction::Updated
            }
            // `Unchanged` was skipped above.
            MemberChange::Remove | MemberChange::Unchanged => {
                delete_member.execute(params![teamspace_id, oid])?;
                AuditAction::Removed
            }
        };
        let (previous_email, previous_name) = previous(change);
        insert_events.push(|row| {
            row.value(next_event)?
                .value(teamspace_id)?
                .value(run_id)?
                .value(source_id)?
                .value(<&str>::from(action))?
                .value(oid)?
                .value(email)?
                .value(name)?
                .value("developer")?
                .value(previous_email)?
                .value(previous_name)?
                .value(now)?;
            Ok::<_, StoreError>(())
        })?;
        next_event += 1;
    }
    insert_claims.finish()?;
    insert_members.finish()?;
    insert_events.finish()?;
    if next_event == first_event {
        return Ok(None);
    }
    let last_event = next_event - 1;
    write_outbox(connection, teamspace_id, first_event..=last_event)?;
    Ok(Some((first_event, last_event)))
}

/// The first id for this run's audit events, which take the ids after it in order. Safe only
/// because the caller holds SQLite's write lock, so no other writer draws ids until it commits;
/// an engine with concurrent writers draws them from a sequence instead, and nothing outside
/// this write path may assume one run's ids are contiguous.
fn next_event_id(connection: &Connection) -> Result<i64, StoreError> {
    Ok(connection.query_row("SELECT ifnull(max(id), 0) + 1 FROM audit_events", [], |row| row.get(0))?)
}

/// The pending delivery of each new event.
fn write_outbox(
    connection: &Connection,
    teamspace_id: i64,
    events: std::ops::RangeInclusive<i64>,
) -> Result<(), StoreError> {
    let count = usize::try_from(events.end() - events.start() + 1).unwrap_or(0);
    let mut insert = ChunkedInsert::prepare(connection, "outbox", "teamspace_id, event_id", count)?;
    for id in events {
        insert.push(|row| {
            row.value(teamspace_id)?.value(id)?;
            Ok::<_, StoreError>(())
        })?;
    }
    insert.finish()
}
