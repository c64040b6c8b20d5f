//! A write session: one transaction that holds the teamspace's write turn from the first read
//! to the commit (SQLite's write lock, taken by `BEGIN IMMEDIATE`; on PostgreSQL an advisory
//! lock per teamspace), so a run plans against exactly the state it then changes.

use std::collections::HashMap;
use std::sync::Arc;

use super::apply::{apply_plan, record, RunEnd};
use super::engine::Tx;
use super::health::Health;
use super::packed::{attach_claims, unpack, MEMBERS_PER_ROW};
use super::values::LIST_CHUNK_ROWS;
use super::{postgres, sqlite, NewRun, Scope, SourceRecord, StoreError, TeamspaceRecord};
use crate::clock::Millis;
use crate::domain::{Oid, RunId, SourceKind, SourceName};
use crate::plan::guard::Cleared;
use crate::plan::{CurrentMember, MemberChange, Plan, SourceKey};

/// One request's part of a write session, kept or undone on its own (SCIM batches): the same
/// name each time, since savepoints of one session never nest.
pub(super) const SAVEPOINT: &str = "SAVEPOINT request";
/// Undoes what was written since [`SAVEPOINT`]; the transaction goes on.
pub(super) const ROLLBACK_TO_SAVEPOINT: &str = "ROLLBACK TO SAVEPOINT request";
/// Ends the part begun by [`SAVEPOINT`], keeping what is left of it.
pub(super) const RELEASE_SAVEPOINT: &str = "RELEASE SAVEPOINT request";

/// An open write transaction on one teamspace. Dropping it without `apply` or `record_run`
/// rolls everything back.
pub struct WriteSession {
    pub(super) tx: Tx,
    pub(super) teamspace: TeamspaceRecord,
    pub(super) health: Arc<Health>,
    /// The teamspace's turn to write in this process, given back when the session ends.
    pub(super) _turn: tokio::sync::OwnedMutexGuard<()>,
}

/// Commits `tx` unless the database file is gone (what it holds would not survive a restart),
/// and notes what the outcome says about the storage.
pub(super) async fn commit(tx: Tx, health: &Health) -> Result<(), StoreError> {
    health.check_file()?;
    health.record(tx.commit().await)
}

impl WriteSession {
    /// Starts a part of the transaction that can be undone alone: one request of a batch
    /// (`scim_put`, `scim_delete`).
    pub(super) async fn savepoint(&mut self) -> Result<(), StoreError> {
        on_tx!(&mut self.tx, c => sqlx::query(SAVEPOINT).execute(&mut *c).await.map(|done| done.rows_affected()))?;
        Ok(())
    }

    /// Ends the part begun by [`WriteSession::savepoint`]: keeps what it wrote, as part of the
    /// transaction, or undoes it; either way the transaction goes on.
    pub(super) async fn end_savepoint(&mut self, keep: bool) -> Result<(), StoreError> {
        if !keep {
            on_tx!(&mut self.tx, c => sqlx::query(ROLLBACK_TO_SAVEPOINT).execute(&mut *c).await.map(|done| done.rows_affected()))?;
        }
        on_tx!(&mut self.tx, c => sqlx::query(RELEASE_SAVEPOINT).execute(&mut *c).await.map(|done| done.rows_affected()))?;
        Ok(())
    }

    /// The teamspace, as read under the lock.
    pub fn teamspace(&self) -> &TeamspaceRecord {
        &self.teamspace
    }

    /// The source row for `name`, created on first use.
    pub async fn ensure_source(&mut self, name: &SourceName, now: Millis) -> Result<SourceRecord, StoreError> {
        const SQL: &str = "INSERT INTO sources (teamspace_id, kind, name, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (teamspace_id, kind, name) DO UPDATE SET kind = excluded.kind \
             RETURNING id, version, snapshot_digest, snapshot_version";
        let (id, version, digest, digest_version): (i64, i64, Option<Vec<u8>>, Option<i64>) = on_tx!(&mut self.tx, c => {
            sqlx::query_as(SQL)
                .bind(self.teamspace.id)
                .bind(name.kind().as_str())
                .bind(name.id())
                .bind(now.0)
                .fetch_one(&mut *c)
                .await
        })?;
        let last_snapshot = match (digest.and_then(|d| <[u8; 16]>::try_from(d).ok()), digest_version) {
            (Some(digest), Some(version)) => Some((digest, version)),
            _ => None,
        };
        Ok(SourceRecord { id, name: name.clone(), version, last_snapshot })
    }

    /// Every source of the teamspace with its kind: the planner's attribute precedence.
    pub async fn source_kinds(&mut self) -> Result<HashMap<SourceKey, SourceKind>, StoreError> {
        let rows: Vec<(i64, String)> = on_tx!(&mut self.tx, c => {
            sqlx::query_as("SELECT id, kind FROM sources WHERE teamspace_id = $1")
                .bind(self.teamspace.id)
                .fetch_all(&mut *c)
                .await
        })?;
        rows.into_iter()
            .map(|(id, kind)| {
                let kind = kind.parse().map_err(|e: String| StoreError::corrupt("sources.kind", e))?;
                Ok((id, kind))
            })
            .collect()
    }

    /// The members in `scope` with their claims, in oid order, handed to `each_page` a page
    /// at a time (at most [`MEMBERS_PER_ROW`]): the planner joins them as they come, so a
    /// million members are never held at once.
    pub async fn read_current(
        &mut self,
        scope: Scope<'_>,
        mut each_page: impl FnMut(&[CurrentMember]) + Send,
    ) -> Result<(), StoreError> {
        let mut page = Vec::new();
        let mut last_read: Option<Oid> = None;
        let teamspace = self.teamspace.id;
        match scope {
            Scope::All => {
                // Keyset pages in oid order, each one packed row of members, then one packed
                // row of the claims in the same oid range, merged.
                let (members_sql, claims_sql) = match self.tx {
                    Tx::Sqlite(_) => (sqlite::packed_sql::members_page(), sqlite::packed_sql::CLAIMS_RANGE),
                    Tx::Postgres(_) => (postgres::packed_sql::members_page(), postgres::packed_sql::CLAIMS_RANGE),
                };
                let mut after: Vec<u8> = Vec::new();
                loop {
                    let packed: Option<String> = on_tx!(&mut self.tx, c => {
                        sqlx::query_scalar(&members_sql).bind(teamspace).bind(&after).fetch_one(&mut *c).await
                    })?;
                    page.clear();
                    unpack(packed.as_deref().unwrap_or_default(), &mut page)?;
                    let Some(last) = page.last().map(|m| m.oid.to_bytes()) else { break };
                    let claims: Option<String> = on_tx!(&mut self.tx, c => {
                        sqlx::query_scalar(claims_sql)
                            .bind(teamspace)
                            .bind(&after)
                            .bind(&last[..])
                            .fetch_one(&mut *c)
                            .await
                    })?;
                    attach_claims(claims.as_deref().unwrap_or_default(), &mut page)?;
                    last_read = ascending(&page, last_read)?;
                    each_page(&page);
                    if (page.len() as i64) < MEMBERS_PER_ROW {
                        break;
                    }
                    after = last.to_vec();
                }
            }
            Scope::Oids(oids) => {
                let mut sorted: Vec<[u8; 16]> = oids.iter().map(|o| o.to_bytes()).collect();
                sorted.sort_unstable();
                sorted.dedup();
                for chunk in sorted.chunks(LIST_CHUNK_ROWS) {
                    let packed: Option<String> = match &mut self.tx {
                        Tx::Sqlite(tx) => {
                            let sql = sqlite::packed_sql::of_oids(chunk.len());
                            let mut query = sqlx::query_scalar(&sql).bind(teamspace);
                            for oid in chunk {
                                query = query.bind(&oid[..]);
                            }
                            query.fetch_one(&mut **tx).await?
                        }
                        Tx::Postgres(tx) => {
                            let oids: Vec<&[u8]> = chunk.iter().map(|oid| &oid[..]).collect();
                            sqlx::query_scalar(postgres::packed_sql::OF_OIDS)
                                .bind(teamspace)
                                .bind(oids)
                                .fetch_one(&mut **tx)
                                .await?
                        }
                    };
                    page.clear();
                    unpack(packed.as_deref().unwrap_or_default(), &mut page)?;
                    last_read = ascending(&page, last_read)?;
                    each_page(&page);
                }
            }
        }
        Ok(())
    }

    /// Fills in the stored email and name where a plan row needs them to be recorded: removals,
    /// claim-only rows, and the previous values of updates (an update that gives no name keeps
    /// the stored one).
    pub async fn resolve_attributes(&mut self, plan: &mut Plan) -> Result<(), StoreError> {
        let wanted: Vec<Oid> = plan.changes.iter().filter(|c| c.needs_stored_attributes()).map(|c| c.oid).collect();
        // Most SCIM batches only add: no look-up, and no hand-off to the connection's thread.
        if wanted.is_empty() {
            return Ok(());
        }
        let teamspace_id = self.teamspace.id;
        let stored = match &mut self.tx {
            Tx::Sqlite(tx) => {
                sqlite::bulk::with_connection(tx, wanted.len(), |c| {
                    sqlite::write::stored_attributes(c, teamspace_id, &wanted)
                })
                .await?
            }
            Tx::Postgres(tx) => postgres::write::stored_attributes(tx, teamspace_id, &wanted).await?,
        };
        for change in plan.changes.iter_mut().filter(|c| c.needs_stored_attributes()) {
            let current = stored
                .get(&change.oid)
                .ok_or_else(|| StoreError::corrupt("members", format!("{} is planned but not stored", change.oid)))?;
            match (&mut change.member, change.attributes.as_mut()) {
                (MemberChange::Update { previous }, Some(new)) => {
                    *previous = Some(Box::new(current.clone()));
                    if new.display_name.is_none() {
                        new.display_name = current.display_name.clone();
                    }
                }
                _ => change.attributes = Some(current.clone()),
            }
        }
        Ok(())
    }

    /// Commits a plan: run row, members, claims and audit rows (its events), all or nothing.
    #[tracing::instrument(skip_all, fields(teamspace = %self.teamspace.name, changes = plan.plan().changes.len()))]
    pub async fn apply(mut self, run: &NewRun, plan: Cleared<'_>, now: Millis) -> Result<RunId, StoreError> {
        let _behind = self.write_behind(plan.plan().changes.len());
        let run_id = apply_plan(&mut self.tx, run, plan.plan(), now).await?;
        commit(self.tx, &self.health).await?;
        Ok(run_id)
    }

    /// Commits a run that changes no member (dry run, held, failed), with its plan if given.
    pub async fn record_run(mut self, run: &NewRun, end: RunEnd<'_>, now: Millis) -> Result<RunId, StoreError> {
        let _behind = self.write_behind(end.plan.map_or(0, |plan| plan.changes.len()));
        let run_id = record(&mut self.tx, run, end, now).await?;
        commit(self.tx, &self.health).await?;
        Ok(run_id)
    }

    /// For a write of `rows` rows large enough, syncs the database file and its WAL while it
    /// runs and until its commit, checkpoint included, is over (`sqlite/write_behind.rs`).
    fn write_behind(&self, rows: usize) -> Option<sqlite::WriteBehind> {
        if rows < sqlite::WRITE_BEHIND_FROM_ROWS {
            return None;
        }
        sqlite::WriteBehind::start(self.health.database_file()?)
    }
}

/// Checks that `page` ascends by oid after `before`, as the planner's join needs; returns its
/// last oid. The queries order by oid, so only a damaged index could break this.
fn ascending(page: &[CurrentMember], before: Option<Oid>) -> Result<Option<Oid>, StoreError> {
    let mut last = before;
    for member in page {
        if last.is_some_and(|last| last >= member.oid) {
            return Err(StoreError::corrupt("members", format!("{} is out of oid order", member.oid)));
        }
        last = Some(member.oid);
    }
    Ok(last)
}
