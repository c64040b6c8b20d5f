//! Writing runs inside a [`super::WriteSession`]: a plan's members, claims, run, audit and
//! outbox rows as a few bulk statements, or a run that changed nothing (dry run, held, failed).

use serde::Serialize;
use sqlx::{Sqlite, Transaction};

use super::values::{values_list, CHUNK_ROWS};
use super::StoreError;
use crate::clock::Millis;
use crate::domain::RunId;
use crate::plan::{Change, ClaimChange, MemberChange, Plan};

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
        MemberChange::Update { previous_email, previous_display_name } => {
            (Some(previous_email.as_str()), previous_display_name.as_deref())
        }
        _ => (None, None),
    }
}

pub(super) type Tx = Transaction<'static, Sqlite>;

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
    let input = match run.input {
        RunInput::Snapshot => "snapshot",
        RunInput::Deltas => "deltas",
    };
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO runs (teamspace_id, source_id, trigger, input, outcome, started_at, finished_at, \
         added, removed, updated, unchanged, reason, source_version, approves_run_id, details) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
    )
    .bind(run.teamspace_id)
    .bind(run.source_id)
    .bind(run.trigger)
    .bind(input)
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
    .bind(run.details.as_ref().map(|d| d.to_string()))
    .fetch_one(&mut **tx)
    .await?;
    Ok(RunId(id))
}

/// Rows of the plan selected by `keep`, in chunks, each with its oid bytes precomputed so
/// statements can borrow them.
fn chunks(plan: &Plan, keep: impl Fn(&Change) -> bool) -> Vec<Vec<(&Change, [u8; 16])>> {
    let selected: Vec<_> = plan.changes.iter().filter(|c| keep(c)).map(|c| (c, c.oid.to_bytes())).collect();
    selected.chunks(CHUNK_ROWS).map(<[_]>::to_vec).collect()
}

/// Writes the run row and, for an applied run, every member change: the body of
/// [`super::WriteSession::apply`].
pub(super) async fn apply_plan(tx: &mut Tx, run: &NewRun, plan: &Plan, now: Millis) -> Result<RunId, StoreError> {
    sqlx::query("UPDATE teamspaces SET version = version + 1 WHERE id = $1")
        .bind(run.teamspace_id)
        .execute(&mut **tx)
        .await?;
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
    let scope = Scope { tx, teamspace_id: run.teamspace_id, source_id: run.source_id, now };
    write_members(scope, plan, run_id).await?;
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
    let rows: Vec<(usize, &Change, [u8; 16])> =
        plan.changes.iter().enumerate().map(|(i, c)| (i, c, c.oid.to_bytes())).collect();
    for chunk in rows.chunks(CHUNK_ROWS) {
        let sql = format!(
            "INSERT INTO planned_changes (run_id, seq, oid, claim, member, email, display_name, previous_email, previous_display_name) VALUES {}",
            values_list(1, "($1, #, #, #, #, #, #, #, #)", chunk.len())
        );
        let mut query = sqlx::query(&sql).bind(run_id.0);
        for (seq, change, oid) in chunk {
            let (previous_email, previous_name) = previous(change);
            query = query
                .bind(i64::try_from(*seq).unwrap_or(i64::MAX))
                .bind(&oid[..])
                .bind(claim_word(change.claim))
                .bind(member_word(&change.member))
                .bind(change.email.as_str())
                .bind(change.display_name.as_deref())
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

/// The member, claim, audit and outbox writes of one plan, each as a few bulk statements.
async fn write_members(scope: Scope<'_>, plan: &Plan, run_id: RunId) -> Result<(), StoreError> {
    let Scope { tx, teamspace_id, source_id, now } = scope;
    for chunk in chunks(plan, |c| c.member == MemberChange::Add) {
        let sql = format!(
            "INSERT INTO members (teamspace_id, oid, email, display_name, attrs_source_id, created_at, updated_at) VALUES {}",
            values_list(3, "($1, #, #, #, $2, $3, $3)", chunk.len())
        );
        let mut query = sqlx::query(&sql).bind(teamspace_id).bind(source_id).bind(now.0);
        for (change, oid) in &chunk {
            query = query.bind(&oid[..]).bind(change.email.as_str()).bind(change.display_name.as_deref());
        }
        query.execute(&mut **tx).await?;
    }
    for chunk in chunks(plan, |c| matches!(c.member, MemberChange::Update { .. })) {
        let sql = format!(
            "UPDATE members SET email = v.column2, display_name = v.column3, attrs_source_id = $2, updated_at = $3 \
             FROM (VALUES {}) AS v WHERE members.teamspace_id = $1 AND members.oid = v.column1",
            values_list(3, "(#, #, #)", chunk.len())
        );
        let mut query = sqlx::query(&sql).bind(teamspace_id).bind(source_id).bind(now.0);
        for (change, oid) in &chunk {
            query = query.bind(&oid[..]).bind(change.email.as_str()).bind(change.display_name.as_deref());
        }
        query.execute(&mut **tx).await?;
    }
    for chunk in chunks(plan, |c| c.claim == ClaimChange::Gain) {
        let sql = format!(
            "INSERT INTO claims (teamspace_id, oid, source_id, created_at) VALUES {}",
            values_list(3, "($1, #, $2, $3)", chunk.len())
        );
        let mut query = sqlx::query(&sql).bind(teamspace_id).bind(source_id).bind(now.0);
        for (_, oid) in &chunk {
            query = query.bind(&oid[..]);
        }
        query.execute(&mut **tx).await?;
    }
    for chunk in chunks(plan, |c| c.claim == ClaimChange::Drop) {
        let sql = format!(
            "DELETE FROM claims WHERE teamspace_id = $1 AND source_id = $2 AND oid IN ({})",
            values_list(2, "#", chunk.len())
        );
        let mut query = sqlx::query(&sql).bind(teamspace_id).bind(source_id);
        for (_, oid) in &chunk {
            query = query.bind(&oid[..]);
        }
        query.execute(&mut **tx).await?;
    }
    for chunk in chunks(plan, |c| c.member == MemberChange::Remove) {
        let sql =
            format!("DELETE FROM members WHERE teamspace_id = $1 AND oid IN ({})", values_list(1, "#", chunk.len()));
        let mut query = sqlx::query(&sql).bind(teamspace_id);
        for (_, oid) in &chunk {
            query = query.bind(&oid[..]);
        }
        query.execute(&mut **tx).await?;
    }
    for chunk in chunks(plan, |c| c.member != MemberChange::Unchanged) {
        let sql = format!(
            "INSERT INTO audit_events (teamspace_id, run_id, source_id, action, oid, email, display_name, role, \
             previous_email, previous_display_name, occurred_at) VALUES {}",
            values_list(4, "($1, $2, $3, #, #, #, #, 'developer', #, #, $4)", chunk.len())
        );
        let mut query = sqlx::query(&sql).bind(teamspace_id).bind(run_id.0).bind(source_id).bind(now.0);
        for (change, oid) in &chunk {
            let action = match change.member {
                MemberChange::Add => "added",
                MemberChange::Remove => "removed",
                _ => "updated",
            };
            let (previous_email, previous_name) = previous(change);
            query = query
                .bind(action)
                .bind(&oid[..])
                .bind(change.email.as_str())
                .bind(change.display_name.as_deref())
                .bind(previous_email)
                .bind(previous_name);
        }
        query.execute(&mut **tx).await?;
    }
    // Every audit row of this run becomes a pending event: same transaction, same ids.
    sqlx::query(
        "INSERT INTO outbox (event_id, teamspace_id) SELECT id, teamspace_id FROM audit_events WHERE run_id = $1",
    )
    .bind(run_id.0)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
