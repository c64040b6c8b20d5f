//! A write session: one `BEGIN IMMEDIATE` transaction holding SQLite's write lock from the
//! first read to the commit, so a run plans against exactly the state it then changes.

use std::collections::HashMap;

use futures_util::TryStreamExt;
use sqlx::Row;

use super::apply::{apply_plan, record, Tx};
use super::members::{push_claim_row, CURRENT_COLUMNS};
use super::values::{values_list, CHUNK_ROWS};
use super::{NewRun, Outcome, Scope, SourceRecord, StoreError, TeamspaceRecord};
use crate::clock::Millis;
use crate::domain::{RunId, SourceKind, SourceName};
use crate::plan::{CurrentMember, Plan, SourceKey};

/// An open write transaction on one teamspace. Dropping it without `apply` or `record_run`
/// rolls everything back.
pub struct WriteSession {
    pub(super) tx: Tx,
    pub(super) teamspace: TeamspaceRecord,
}

impl WriteSession {
    /// The teamspace, as read under the lock.
    pub fn teamspace(&self) -> &TeamspaceRecord {
        &self.teamspace
    }

    /// The source row for `name`, created on first use.
    pub async fn ensure_source(&mut self, name: &SourceName, now: Millis) -> Result<SourceRecord, StoreError> {
        let row = sqlx::query(
            "INSERT INTO sources (teamspace_id, kind, name, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (teamspace_id, kind, name) DO UPDATE SET kind = excluded.kind \
             RETURNING id, version",
        )
        .bind(self.teamspace.id)
        .bind(name.kind().as_str())
        .bind(name.id())
        .bind(now.0)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(SourceRecord { id: row.try_get(0)?, name: name.clone(), version: row.try_get(1)? })
    }

    /// Every source of the teamspace with its kind: the planner's attribute precedence.
    pub async fn source_kinds(&mut self) -> Result<HashMap<SourceKey, SourceKind>, StoreError> {
        let rows = sqlx::query("SELECT id, kind FROM sources WHERE teamspace_id = $1")
            .bind(self.teamspace.id)
            .fetch_all(&mut *self.tx)
            .await?;
        rows.iter()
            .map(|row| {
                let kind: String = row.try_get(1)?;
                let kind = kind.parse().map_err(|e: String| StoreError::corrupt("sources.kind", e))?;
                Ok((row.try_get(0)?, kind))
            })
            .collect()
    }

    /// Members with their claims, sorted by oid: the planner's `current`.
    pub async fn load_current(&mut self, scope: Scope<'_>) -> Result<Vec<CurrentMember>, StoreError> {
        let mut members = Vec::new();
        match scope {
            Scope::All => {
                let sql = format!("{CURRENT_COLUMNS} ORDER BY m.oid, c.source_id");
                let mut rows = sqlx::query(&sql).bind(self.teamspace.id).fetch(&mut *self.tx);
                while let Some(row) = rows.try_next().await? {
                    push_claim_row(&mut members, &row)?;
                }
            }
            Scope::Oids(oids) => {
                let mut sorted: Vec<[u8; 16]> = oids.iter().map(|o| o.to_bytes()).collect();
                sorted.sort_unstable();
                sorted.dedup();
                for chunk in sorted.chunks(CHUNK_ROWS) {
                    let sql = format!(
                        "{CURRENT_COLUMNS} AND m.oid IN ({}) ORDER BY m.oid, c.source_id",
                        values_list(1, "#", chunk.len())
                    );
                    let mut query = sqlx::query(&sql).bind(self.teamspace.id);
                    for oid in chunk {
                        query = query.bind(&oid[..]);
                    }
                    for row in query.fetch_all(&mut *self.tx).await? {
                        push_claim_row(&mut members, &row)?;
                    }
                }
            }
        }
        Ok(members)
    }

    /// Commits a plan: run row, members, claims, audit and outbox rows, all or nothing.
    #[tracing::instrument(skip_all, fields(teamspace = %self.teamspace.name, changes = plan.changes.len()))]
    pub async fn apply(mut self, run: &NewRun, plan: &Plan, now: Millis) -> Result<RunId, StoreError> {
        let run_id = apply_plan(&mut self.tx, run, plan, now).await?;
        self.tx.commit().await?;
        Ok(run_id)
    }

    /// Commits a run that changes no member (dry run, held, failed), with its plan if given.
    pub async fn record_run(
        mut self,
        run: &NewRun,
        outcome: Outcome,
        plan: Option<&Plan>,
        reason: Option<&str>,
        now: Millis,
    ) -> Result<RunId, StoreError> {
        let run_id = record(&mut self.tx, run, outcome, plan, reason, now).await?;
        self.tx.commit().await?;
        Ok(run_id)
    }
}
