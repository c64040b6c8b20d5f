//! A delta-mode graph source's saved state (`graph_delta_state`): Graph's delta links and the
//! membership graph they update. The store keeps the encodings as given; their format belongs
//! to `source::graph::delta`. The state is written in the run's own transaction, so a delta
//! link is never saved without the member changes it produced, nor those without it.

use super::engine::Fields;
use super::{Store, StoreError, WriteSession};
use crate::clock::Millis;
use crate::domain::SourceName;

/// The small part of the state, read every tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaHead {
    /// The source row.
    pub source_id: i64,
    /// Moves with every write.
    pub revision: i64,
    /// When the last full listing finished.
    pub full_at: Millis,
    /// The delta links, as JSON.
    pub links: String,
}

/// The membership graph, read when the copy in memory is not at the head's revision.
#[derive(Debug, Clone)]
pub struct DeltaBody {
    /// Group → direct members.
    pub edges: Vec<u8>,
    /// The users' attributes.
    pub users: Vec<u8>,
}

/// What one run writes. `None` parts are kept as they are.
#[derive(Debug)]
pub struct DeltaWrite<'a> {
    /// The revision this write was computed from; `None` for a source without saved state.
    pub based_on: Option<i64>,
    /// When the last full listing finished.
    pub full_at: Millis,
    /// The delta links, as JSON.
    pub links: &'a str,
    /// Group → direct members, when they changed.
    pub edges: Option<&'a [u8]>,
    /// The users' attributes, when they changed.
    pub users: Option<&'a [u8]>,
}

impl Store {
    /// The saved delta state's head for `source` of `teamspace`, if it has one.
    pub async fn graph_delta_head(
        &self,
        teamspace: &str,
        source: &SourceName,
    ) -> Result<Option<DeltaHead>, StoreError> {
        const SQL: &str = "SELECT d.source_id, d.revision, d.full_at, d.links FROM graph_delta_state d \
             JOIN sources s ON s.id = d.source_id JOIN teamspaces t ON t.id = s.teamspace_id \
             WHERE t.name = $1 AND s.kind = $2 AND s.name = $3";
        on_pool!(&self.pool, pool => {
            let row = sqlx::query(SQL)
                .bind(teamspace)
                .bind(source.kind().as_str())
                .bind(source.id())
                .fetch_optional(pool)
                .await?;
            row.map(|row| -> Result<DeltaHead, StoreError> {
                Ok(DeltaHead {
                    source_id: row.field("source_id")?,
                    revision: row.field("revision")?,
                    full_at: Millis(row.field("full_at")?),
                    links: row.field("links")?,
                })
            })
            .transpose()
        })
    }

    /// The membership graph at `revision`; `None` when the state has moved on since.
    pub async fn graph_delta_body(&self, source_id: i64, revision: i64) -> Result<Option<DeltaBody>, StoreError> {
        const SQL: &str = "SELECT p.part, p.data FROM graph_delta_parts p \
             JOIN graph_delta_state d ON d.source_id = p.source_id \
             WHERE p.source_id = $1 AND d.revision = $2";
        let parts: Vec<(String, Vec<u8>)> =
            on_pool!(&self.pool, pool => sqlx::query_as(SQL).bind(source_id).bind(revision).fetch_all(pool).await)?;
        let mut body = DeltaBody { edges: Vec::new(), users: Vec::new() };
        let mut found = 0;
        for (part, data) in parts {
            match part.as_str() {
                "edges" => body.edges = data,
                "users" => body.users = data,
                other => return Err(StoreError::corrupt("graph_delta_parts.part", format!("`{other}`"))),
            }
            found += 1;
        }
        Ok((found == 2).then_some(body))
    }
}

impl WriteSession {
    /// Saves `write` as `source_id`'s delta state and returns its new revision. Refused when
    /// the state is no longer at `write.based_on`: another process saved a newer one, and this
    /// run's view of Graph is older than what is stored.
    pub async fn save_graph_delta(
        &mut self,
        source_id: i64,
        write: &DeltaWrite<'_>,
        now: Millis,
    ) -> Result<i64, StoreError> {
        let stale = || {
            StoreError::Refused(format!(
                "the delta state of source {source_id} changed while this run read Graph (it was at revision {:?}); \
             the next run starts from the newer state",
                write.based_on
            ))
        };
        let revision = match write.based_on {
            None => {
                if write.edges.is_none() || write.users.is_none() {
                    return Err(StoreError::Refused("a first delta state must carry the whole graph".into()));
                }
                const SQL: &str = "INSERT INTO graph_delta_state (source_id, revision, full_at, links, updated_at) \
                     VALUES ($1, 1, $2, $3, $4) ON CONFLICT (source_id) DO NOTHING";
                let inserted = on_tx!(&mut self.tx, c => sqlx::query(SQL)
                    .bind(source_id)
                    .bind(write.full_at.0)
                    .bind(write.links)
                    .bind(now.0)
                    .execute(&mut *c)
                    .await.map(|done| done.rows_affected()))?;
                if inserted == 0 {
                    return Err(stale());
                }
                1
            }
            Some(based_on) => {
                const SQL: &str = "UPDATE graph_delta_state SET revision = revision + 1, full_at = $3, links = $4, \
                     updated_at = $5 WHERE source_id = $1 AND revision = $2";
                let updated = on_tx!(&mut self.tx, c => sqlx::query(SQL)
                    .bind(source_id)
                    .bind(based_on)
                    .bind(write.full_at.0)
                    .bind(write.links)
                    .bind(now.0)
                    .execute(&mut *c)
                    .await.map(|done| done.rows_affected()))?;
                if updated == 0 {
                    return Err(stale());
                }
                based_on + 1
            }
        };
        for (part, data) in [("edges", write.edges), ("users", write.users)] {
            let Some(data) = data else { continue };
            const SQL: &str = "INSERT INTO graph_delta_parts (source_id, part, data) VALUES ($1, $2, $3) \
                 ON CONFLICT (source_id, part) DO UPDATE SET data = excluded.data";
            on_tx!(&mut self.tx, c => sqlx::query(SQL)
                .bind(source_id)
                .bind(part)
                .bind(data)
                .execute(&mut *c)
                .await.map(|done| done.rows_affected()))?;
        }
        Ok(revision)
    }
}
