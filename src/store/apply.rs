//! Writing runs inside a [`super::WriteSession`]: a plan's members, claims, run, audit and
//! outbox rows as a few bulk statements, or a run that changed nothing (dry run, held, failed).

use serde::Serialize;
use sqlx::{Sqlite, Transaction};

use super::values::{values_list, CHUNK_ROWS};
use super::StoreError;
use crate::clock::Millis;
use crate::domain::fingerprint;
use crate::domain::RunId;
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
    pub trigger: &'static str,
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

fn member_word(change: &MemberChange) -> &'static str {
    match change {
        MemberChange::Add => "add",
        MemberChange::Remove => "remove",
        MemberChange::Update { .. } => "update",
        MemberChange::Unchanged => "unchanged",
    }
}

fn claim_word(change: ClaimChange) -> &'static str {
    match change {
        ClaimChange::Gain => "gain",
        ClaimChange::Keep => "keep",
        ClaimChange::Drop => "drop",
    }
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
        .bind(run.trigger)
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
    let scope = Scope { tx: &mut *tx, teamspace_id: run.teamspace_id, source_id: run.source_id, now };
    if let Some((first, last)) = write_members(scope, plan, run_id).await? {
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
    let rows: Vec<(usize, &Change)> = plan.changes.iter().enumerate().collect();
    for chunk in rows.chunks(CHUNK_ROWS) {
        let oids = oid_bytes(chunk.iter().map(|(_, c)| *c));
        let sql = format!(
            "INSERT INTO planned_changes (run_id, seq, oid, claim, member, email, display_name, previous_email, \
             previous_display_name) VALUES {}",
            values_list(&format!("({}, ?, ?, ?, ?, ?, ?, ?, ?)", run_id.0), chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for ((seq, change), oid) in chunk.iter().zip(&oids) {
            let (previous_email, previous_name) = previous(change);
            let attributes = recorded(change)?;
            query = query
                .bind(i64::try_from(*seq).unwrap_or(i64::MAX))
                .bind(&oid[..])
                .bind(claim_word(change.claim))
                .bind(member_word(&change.member))
                .bind(attributes.email.as_str())
                .bind(attributes.display_name.as_deref())
                .bind(previous_email)
                .bind(previous_name);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(run_id)
}

struct Scope<'t> {
    tx: &'t mut Tx,
    teamspace_id: i64,
    source_id: i64,
    now: Millis,
}

/// Runs `sql(rows)` once per chunk of `changes`, binding only their oids.
async fn for_oid_chunks(tx: &mut Tx, changes: &[&Change], sql: impl Fn(usize) -> String) -> Result<(), StoreError> {
    for chunk in changes.chunks(CHUNK_ROWS) {
        let oids = oid_bytes(chunk.iter().copied());
        let sql = sql(chunk.len());
        let mut query = sqlx::query(&sql);
        for oid in &oids {
            query = query.bind(&oid[..]);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Binds email, display name and their fingerprints, in that order.
fn bind_attributes<'q>(
    query: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    attributes: &'q Attributes,
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    query
        .bind(attributes.email.as_str())
        .bind(attributes.display_name.as_deref())
        .bind(fingerprint::email(&attributes.email))
        .bind(attributes.display_name.as_deref().map(fingerprint::name))
}

/// The changes selected by `keep`, in plan (oid) order.
fn selected(plan: &Plan, keep: impl Fn(&Change) -> bool) -> Vec<&Change> {
    plan.changes.iter().filter(|c| keep(c)).collect()
}

/// Each change's oid as the 16 bytes stored, so a statement can borrow them while binding.
fn oid_bytes<'c>(changes: impl Iterator<Item = &'c Change>) -> Vec<[u8; 16]> {
    changes.map(|c| c.oid.to_bytes()).collect()
}

/// The member, claim, audit and outbox writes of one plan, each as a few bulk statements
/// (see `values_list` for why the integer constants are literals). Returns the range of event
/// ids written, if any.
async fn write_members(scope: Scope<'_>, plan: &Plan, run_id: RunId) -> Result<Option<(i64, i64)>, StoreError> {
    let Scope { tx, teamspace_id, source_id, now } = scope;
    let now = now.0;
    for chunk in selected(plan, |c| c.member == MemberChange::Add).chunks(CHUNK_ROWS) {
        let oids = oid_bytes(chunk.iter().copied());
        let sql = format!(
            "INSERT INTO members (teamspace_id, oid, email, display_name, email_hash, name_hash, attrs_source_id, \
             created_at, updated_at) VALUES {}",
            values_list(&format!("({teamspace_id}, ?, ?, ?, ?, ?, {source_id}, {now}, {now})"), chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for (change, oid) in chunk.iter().zip(&oids) {
            let attributes = recorded(change)?;
            query = bind_attributes(query.bind(&oid[..]), attributes);
        }
        query.execute(&mut **tx).await?;
    }
    for chunk in selected(plan, |c| matches!(c.member, MemberChange::Update { .. })).chunks(CHUNK_ROWS) {
        let oids = oid_bytes(chunk.iter().copied());
        let sql = format!(
            "UPDATE members SET email = v.column2, display_name = v.column3, email_hash = v.column4, \
             name_hash = v.column5, attrs_source_id = {source_id}, updated_at = {now} FROM (VALUES {}) AS v \
             WHERE members.teamspace_id = {teamspace_id} AND members.oid = v.column1",
            values_list("(?, ?, ?, ?, ?)", chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for (change, oid) in chunk.iter().zip(&oids) {
            let attributes = recorded(change)?;
            query = bind_attributes(query.bind(&oid[..]), attributes);
        }
        query.execute(&mut **tx).await?;
    }
    let gained = selected(plan, |c| c.claim == ClaimChange::Gain);
    for_oid_chunks(tx, &gained, |rows| {
        format!(
            "INSERT INTO claims (teamspace_id, oid, source_id, created_at) VALUES {}",
            values_list(&format!("({teamspace_id}, ?, {source_id}, {now})"), rows)
        )
    })
    .await?;
    let dropped = selected(plan, |c| c.claim == ClaimChange::Drop);
    for_oid_chunks(tx, &dropped, |rows| {
        format!(
            "DELETE FROM claims WHERE teamspace_id = {teamspace_id} AND source_id = {source_id} AND oid IN ({})",
            values_list("?", rows)
        )
    })
    .await?;
    let removed = selected(plan, |c| c.member == MemberChange::Remove);
    for_oid_chunks(tx, &removed, |rows| {
        format!("DELETE FROM members WHERE teamspace_id = {teamspace_id} AND oid IN ({})", values_list("?", rows))
    })
    .await?;
    // Event ids are assigned here (the session holds the write lock, so nobody else takes
    // ids meanwhile); the outbox rows are then generated from the id range instead of being
    // read back from the audit rows just written.
    let run = run_id.0;
    let first_event: i64 =
        sqlx::query_scalar("SELECT ifnull(max(id), 0) + 1 FROM audit_events").fetch_one(&mut **tx).await?;
    let mut next_event = first_event;
    for chunk in selected(plan, |c| c.member != MemberChange::Unchanged).chunks(CHUNK_ROWS) {
        let oids = oid_bytes(chunk.iter().copied());
        let sql = format!(
            "INSERT INTO audit_events (id, teamspace_id, run_id, source_id, action, oid, email, display_name, role, \
             previous_email, previous_display_name, occurred_at) VALUES {}",
            values_list(
                &format!("(?, {teamspace_id}, {run}, {source_id}, ?, ?, ?, ?, 'developer', ?, ?, {now})"),
                chunk.len()
            )
        );
        let mut query = sqlx::query(&sql);
        for (change, oid) in chunk.iter().zip(&oids) {
            let action = match change.member {
                MemberChange::Add => "added",
                MemberChange::Remove => "removed",
                _ => "updated",
            };
            let (previous_email, previous_name) = previous(change);
            let attributes = recorded(change)?;
            query = query
                .bind(next_event)
                .bind(action)
                .bind(&oid[..])
                .bind(attributes.email.as_str())
                .bind(attributes.display_name.as_deref())
                .bind(previous_email)
                .bind(previous_name);
            next_event += 1;
        }
        query.execute(&mut **tx).await?;
    }
    if next_event == first_event {
        return Ok(None);
    }
    let last_event = next_event - 1;
    sqlx::query(&format!(
        "WITH RECURSIVE event(id) AS (SELECT {first_event} UNION ALL SELECT id + 1 FROM event WHERE id < {last_event}) \
         INSERT INTO outbox (teamspace_id, event_id) SELECT {teamspace_id}, id FROM event"
    ))
    .execute(&mut **tx)
    .await?;
    Ok(Some((first_event, last_event)))
}
