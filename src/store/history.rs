//! Reading what happened: runs, their plans, the audit trail, per-teamspace summaries.

use serde::Serialize;

use super::apply::RunStatus;
use super::engine::Fields;
use super::members::oid_of;
use super::words::{self, AuditAction, MemberEffect};
use super::{Store, StoreError};
use crate::clock::Millis;
use crate::domain::{Oid, RunId, Trigger};
use crate::plan::{ClaimChange, Counts};

/// A run as listed by `runs list` and `runs show`.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// Run id.
    pub run_id: RunId,
    /// Teamspace slug.
    pub teamspace: String,
    /// `kind:id`.
    pub source: String,
    /// Source row id.
    #[serde(skip)]
    pub source_id: i64,
    /// What started it.
    pub trigger: Trigger,
    /// `snapshot` or `deltas`.
    pub input: String,
    /// Running, or how it ended.
    pub outcome: RunStatus,
    /// Start.
    pub started_at: Millis,
    /// End; none while running.
    pub finished_at: Option<Millis>,
    /// Member-level counts.
    #[serde(flatten)]
    pub counts: Counts,
    /// Why it was aborted or failed.
    pub reason: Option<String>,
    /// Source claims version the plan was made against.
    pub source_version: i64,
    /// For an approval run: the held run it applied.
    pub approves_run_id: Option<RunId>,
    /// For a held run: the run that approved it.
    pub approved_by_run_id: Option<RunId>,
    /// Source-specific details.
    pub details: Option<serde_json::Value>,
}

/// One row of a stored plan, or of an applied run's audit.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedChange {
    /// Member.
    pub oid: Oid,
    /// What happens to the source's claim (`None` for an applied run's changes, which are read
    /// back from the audit log, where claims are not recorded).
    pub claim: Option<ClaimChange>,
    /// What it does to the member.
    pub member: MemberEffect,
    /// Email after the change.
    pub email: String,
    /// Name after the change.
    pub display_name: Option<String>,
    /// Email before an update.
    pub previous_email: Option<String>,
    /// Name before an update.
    pub previous_display_name: Option<String>,
}

/// One audit event.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    /// Event id (the id webhooks carry).
    pub id: i64,
    /// Teamspace slug.
    pub teamspace: String,
    /// The run that made the change.
    pub run_id: RunId,
    /// `kind:id` of the source.
    pub source: String,
    /// What it did to the member.
    pub action: AuditAction,
    /// Member.
    pub oid: Oid,
    /// Email after the change.
    pub email: String,
    /// Name after the change.
    pub display_name: Option<String>,
    /// Role.
    pub role: String,
    /// Email before an update.
    pub previous_email: Option<String>,
    /// Name before an update.
    pub previous_display_name: Option<String>,
    /// When.
    pub occurred_at: Millis,
}

/// Which audit events to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this teamspace (row id).
    pub teamspace_id: Option<i64>,
    /// Only this member.
    pub oid: Option<Oid>,
    /// Only events at or after this time.
    pub since: Option<Millis>,
    /// Only events before this time.
    pub until: Option<Millis>,
    /// Only this source's (`kind` or `kind:id`, as runs name it).
    pub source: Option<String>,
    /// At most this many, newest last.
    pub limit: i64,
}

/// A teamspace with its member count and the last run of each source.
#[derive(Debug, Clone, Serialize)]
pub struct TeamspaceSummary {
    /// Row id (not shown: ids are this database's, not the teamspace's name).
    #[serde(skip)]
    pub id: i64,
    /// Slug.
    pub name: String,
    /// Tenant id.
    pub tenant_id: String,
    /// Members now.
    pub members: u64,
    /// Last run per source.
    pub sources: Vec<SourceSummary>,
}

/// The last run of a source.
#[derive(Debug, Clone, Serialize)]
pub struct SourceSummary {
    /// `kind:id`.
    pub source: String,
    /// Claims it holds.
    pub claims: u64,
    /// Its last run.
    pub last_run_id: Option<RunId>,
    /// That run's outcome.
    pub last_outcome: Option<RunStatus>,
    /// When that run finished.
    pub last_run_at: Option<Millis>,
}

const SOURCE_LABEL: &str = source_label!();

const AUDIT_COLUMNS: &str = concat!(
    "SELECT a.id, t.name AS teamspace, a.run_id, ",
    source_label!(),
    " AS source, a.action, a.oid, a.email, a.display_name, a.role, a.previous_email, a.previous_display_name, \
     a.occurred_at FROM audit_events a JOIN teamspaces t ON t.id = a.teamspace_id JOIN sources s ON s.id = a.source_id"
);

fn audit_of(row: &impl Fields) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        id: row.field("id")?,
        teamspace: row.field("teamspace")?,
        run_id: RunId(row.field("run_id")?),
        source: row.field("source")?,
        action: words::parse("audit_events.action", row.field("action")?)?,
        oid: oid_of(row, "oid")?,
        email: row.field("email")?,
        display_name: row.field("display_name")?,
        role: row.field("role")?,
        previous_email: row.field("previous_email")?,
        previous_display_name: row.field("previous_display_name")?,
        occurred_at: Millis(row.field("occurred_at")?),
    })
}

fn status_of(text: String) -> Result<RunStatus, StoreError> {
    text.parse().map_err(|e| StoreError::corrupt("runs.outcome", e))
}

fn run_of(row: &impl Fields) -> Result<RunRecord, StoreError> {
    let count = |column: &str| row.field::<i64>(column).map(i64::unsigned_abs);
    let details: Option<String> = row.field("details")?;
    Ok(RunRecord {
        run_id: RunId(row.field("id")?),
        teamspace: row.field("teamspace")?,
        source: row.field("source")?,
        source_id: row.field("source_id")?,
        trigger: words::parse("runs.trigger", row.field("trigger")?)?,
        input: row.field("input")?,
        outcome: status_of(row.field("outcome")?)?,
        started_at: Millis(row.field("started_at")?),
        finished_at: row.field::<Option<i64>>("finished_at")?.map(Millis),
        counts: Counts {
            added: count("added")?,
            removed: count("removed")?,
            updated: count("updated")?,
            unchanged: count("unchanged")?,
        },
        reason: row.field("reason")?,
        source_version: row.field("source_version")?,
        approves_run_id: row.field::<Option<i64>>("approves_run_id")?.map(RunId),
        approved_by_run_id: row.field::<Option<i64>>("approved_by_run_id")?.map(RunId),
        details: details.and_then(|d| serde_json::from_str(&d).ok()),
    })
}

fn run_query(filter: &str) -> String {
    format!(
        "SELECT r.id, t.name AS teamspace, {SOURCE_LABEL} AS source, r.source_id, r.trigger, r.input, r.outcome, \
         r.started_at, r.finished_at, r.added, r.removed, r.updated, r.unchanged, r.reason, r.source_version, \
         r.approves_run_id, r.approved_by_run_id, r.teamspace_id, r.details \
         FROM runs r JOIN teamspaces t ON t.id = r.teamspace_id JOIN sources s ON s.id = r.source_id {filter}"
    )
}

impl Store {
    /// Runs, newest first.
    pub async fn list_runs(&self, teamspace_id: Option<i64>, limit: i64) -> Result<Vec<RunRecord>, StoreError> {
        let sql = run_query("WHERE ($1 IS NULL OR r.teamspace_id = $1) ORDER BY r.id DESC LIMIT $2");
        on_pool!(&self.pool, pool => {
        let rows = sqlx::query(&sql).bind(teamspace_id).bind(limit).fetch_all(pool).await?;
        rows.iter().map(run_of).collect()
        })
    }

    /// One run, with the teamspace row id it belongs to.
    pub async fn run(&self, run_id: RunId) -> Result<(RunRecord, i64), StoreError> {
        let sql = run_query("WHERE r.id = $1");
        on_pool!(&self.pool, pool => {
            let row = sqlx::query(&sql)
                .bind(run_id.0)
                .fetch_optional(pool)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("run {run_id}")))?;
            Ok((run_of(&row)?, row.field("teamspace_id")?))
        })
    }

    /// The stored plan of a dry run or held run (at most `limit` rows), and its length.
    pub async fn planned_changes(&self, run_id: RunId, limit: i64) -> Result<(Vec<PlannedChange>, u64), StoreError> {
        let total: i64 = on_pool!(&self.pool, pool => sqlx::query_scalar("SELECT count(*) FROM planned_changes WHERE run_id = $1")
            .bind(run_id.0)
            .fetch_one(pool)
            .await)?;
        on_pool!(&self.pool, pool => {
        let rows = sqlx::query(
            "SELECT oid, claim, member, email, display_name, previous_email, previous_display_name \
             FROM planned_changes WHERE run_id = $1 ORDER BY seq LIMIT $2",
        )
        .bind(run_id.0)
        .bind(limit)
        .fetch_all(pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PlannedChange {
                    oid: oid_of(row, "oid")?,
                    claim: Some(super::apply::claim_of(&row.field::<String>("claim")?)?),
                    member: words::parse("planned_changes.member", row.field("member")?)?,
                    email: row.field("email")?,
                    display_name: row.field("display_name")?,
                    previous_email: row.field("previous_email")?,
                    previous_display_name: row.field("previous_display_name")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()
            .map(|changes| (changes, total.unsigned_abs()))
        })
    }

    /// The current claims version of a source.
    pub async fn source_version(&self, source_id: i64) -> Result<i64, StoreError> {
        Ok(on_pool!(&self.pool, pool => sqlx::query_scalar("SELECT version FROM sources WHERE id = $1")
            .bind(source_id)
            .fetch_one(pool)
            .await)?)
    }

    /// Audit events matching the filter, oldest first (the last `limit` of them).
    pub async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let sql = format!(
            "SELECT * FROM ({AUDIT_COLUMNS} \
             WHERE ($1 IS NULL OR a.teamspace_id = $1) AND ($2 IS NULL OR a.oid = $2) AND ($3 IS NULL OR a.occurred_at >= $3) \
             AND ($5 IS NULL OR a.occurred_at < $5) AND ($6 IS NULL OR {} = $6) \
             ORDER BY a.id DESC LIMIT $4) AS latest ORDER BY id",
            source_label!()
        );
        let oid = filter.oid.map(|o| o.to_bytes().to_vec());
        on_pool!(&self.pool, pool => {
        let rows = sqlx::query(&sql)
            .bind(filter.teamspace_id)
            .bind(oid)
            .bind(filter.since.map(|s| s.0))
            .bind(filter.limit)
            .bind(filter.until.map(|u| u.0))
            .bind(filter.source.as_deref())
            .fetch_all(pool)
            .await?;
        rows.iter().map(audit_of).collect()
        })
    }

    /// The audit events one run wrote, in order (at most `limit`), and how many there are.
    pub async fn audit_of_run(&self, run_id: RunId, limit: i64) -> Result<(Vec<AuditEntry>, u64), StoreError> {
        let range: Option<(Option<i64>, Option<i64>)> = on_pool!(&self.pool, pool => sqlx::query_as("SELECT first_event_id, last_event_id FROM runs WHERE id = $1")
                .bind(run_id.0)
                .fetch_optional(pool)
                .await)?;
        let Some((Some(first), Some(last))) = range else { return Ok((Vec::new(), 0)) };
        // A run's ids lie between its first and last, but other runs' may lie there too: ids
        // are not contiguous where writers of other teamspaces draw them at the same time.
        let sql = format!("{AUDIT_COLUMNS} WHERE a.id BETWEEN $1 AND $2 AND a.run_id = $3 ORDER BY a.id LIMIT $4");
        on_pool!(&self.pool, pool => {
        let rows = sqlx::query(&sql).bind(first).bind(last).bind(run_id.0).bind(limit).fetch_all(pool).await?;
        let entries = rows.iter().map(audit_of).collect::<Result<_, _>>()?;
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE id BETWEEN $1 AND $2 AND run_id = $3")
                .bind(first)
                .bind(last)
                .bind(run_id.0)
                .fetch_one(pool)
                .await?;
        Ok((entries, count.unsigned_abs()))
        })
    }

    /// Every teamspace with member counts and each source's last run.
    pub async fn teamspace_summaries(&self) -> Result<Vec<TeamspaceSummary>, StoreError> {
        on_pool!(&self.pool, pool => {
        let teamspaces = sqlx::query(
            "SELECT t.id, t.name, t.tenant_id, (SELECT count(*) FROM members m WHERE m.teamspace_id = t.id) AS members \
             FROM teamspaces t ORDER BY t.name",
        )
        .fetch_all(pool)
        .await?;
        let mut summaries = Vec::with_capacity(teamspaces.len());
        for row in &teamspaces {
            let id: i64 = row.field("id")?;
            let sources = sqlx::query(&format!(
                "SELECT {SOURCE_LABEL} AS source, \
                 (SELECT count(*) FROM claims c WHERE c.teamspace_id = s.teamspace_id AND c.source_id = s.id) AS claims, \
                 r.id AS run_id, r.outcome, coalesce(r.finished_at, r.started_at) AS run_at FROM sources s \
                 LEFT JOIN runs r ON r.id = (SELECT max(id) FROM runs WHERE source_id = s.id) \
                 WHERE s.teamspace_id = $1 ORDER BY 1"
            ))
            .bind(id)
            .fetch_all(pool)
            .await?;
            summaries.push(TeamspaceSummary {
                id,
                name: row.field("name")?,
                tenant_id: row.field("tenant_id")?,
                members: row.field::<i64>("members")?.unsigned_abs(),
                sources: sources
                    .iter()
                    .map(|s| {
                        Ok(SourceSummary {
                            source: s.field("source")?,
                            claims: s.field::<i64>("claims")?.unsigned_abs(),
                            last_run_id: s.field::<Option<i64>>("run_id")?.map(RunId),
                            last_outcome: s.field::<Option<String>>("outcome")?.map(status_of).transpose()?,
                            last_run_at: s.field::<Option<i64>>("run_at")?.map(Millis),
                        })
                    })
                    .collect::<Result<_, StoreError>>()?,
            });
        }
        Ok(summaries)
        })
    }
}

/// Runs and their member changes, per teamspace, source and outcome (for `/metrics`).
#[derive(Debug, Clone)]
pub struct RunTotals {
    /// Teamspace slug.
    pub teamspace: String,
    /// `kind:id`.
    pub source: String,
    /// Outcome.
    pub outcome: RunStatus,
    /// Runs.
    pub runs: i64,
    /// Members added.
    pub added: i64,
    /// Members removed.
    pub removed: i64,
}

impl Store {
    /// Totals over every recorded run.
    pub async fn run_totals(&self) -> Result<Vec<RunTotals>, StoreError> {
        let sql = format!(
            "SELECT t.name AS teamspace, {SOURCE_LABEL} AS source, r.outcome, count(*) AS runs, \
                 CAST(sum(r.added) AS BIGINT) AS added, CAST(sum(r.removed) AS BIGINT) AS removed FROM runs r \
             JOIN teamspaces t ON t.id = r.teamspace_id JOIN sources s ON s.id = r.source_id \
             GROUP BY t.name, s.kind, s.name, r.outcome ORDER BY 1, 2, 3"
        );
        on_pool!(&self.pool, pool => {
        let rows = sqlx::query(&sql).fetch_all(pool).await?;
        rows.iter()
            .map(|row| {
                Ok(RunTotals {
                    teamspace: row.field("teamspace")?,
                    source: row.field("source")?,
                    outcome: status_of(row.field("outcome")?)?,
                    runs: row.field("runs")?,
                    added: row.field("added")?,
                    removed: row.field("removed")?,
                })
            })
            .collect()
        })
    }
}

impl Store {
    /// Every teamspace's change counter: readers cache until it moves.
    pub async fn teamspace_versions(&self) -> Result<Vec<(i64, i64)>, StoreError> {
        Ok(on_pool!(&self.pool, pool => sqlx::query_as("SELECT id, version FROM teamspaces").fetch_all(pool).await)?)
    }
}
