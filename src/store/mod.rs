//! The state store: the only module that speaks SQL. Exposes domain verbs (load the current
//! members, apply a plan in one transaction, list runs) over SQLite or PostgreSQL through sqlx.

/// SQL for a source row aliased `s` as its `kind:id` name (`manual`, `csv:hr`): one spelling
/// for every query that shows sources, usable in `concat!`.
macro_rules! source_label {
    () => {
        "(s.kind || CASE WHEN s.name = '' THEN '' ELSE ':' || s.name END)"
    };
}

#[macro_use]
mod engine;

mod apply;
mod error;
mod events;
mod graph_delta;
mod health;
mod history;
mod integrity;
mod members;
mod owner;
mod packed;
mod postgres;
mod replicas;
mod running;
mod scim;
mod scim_condition;
mod session;
mod sqlite;
mod values;
mod words;

use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;

pub use engine::Engine;
use engine::{Fields, Pool};

pub use apply::{NewRun, Outcome, RunEnd, RunInput, RunStatus};
pub use error::{StoreError, UniqueKey};
pub use events::{Event, EventFilter, EventState, PendingHead};
pub use graph_delta::{DeltaBody, DeltaHead, DeltaWrite};
pub use history::{AuditEntry, AuditFilter, PlannedChange, RunRecord, RunTotals, SourceSummary, TeamspaceSummary};
pub use members::{MemberRecord, Scope};
pub use running::{HEARTBEAT_EVERY, INTERRUPTED, RUN_LEASE};
pub use scim::{
    GroupRow, ResourceKind, ScimPut, ScimTokenRecord, ScimUserFacts, StoredResource, TokenCredential, UserRow,
};
pub use scim_condition::{IndexedAttribute, ScimCondition};
pub use session::WriteSession;
pub use words::{AuditAction, DeliveryStatus, MemberEffect};

use crate::clock::Millis;
use crate::domain::{MaxRemovals, SourceName, TeamspaceName, TenantId};
use crate::plan::SourceKey;

/// How to open the store. Built by the caller from config and flags; the store reads no env.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// sqlx URL, e.g. `sqlite://c7sync.db`, `sqlite::memory:` or `postgres://c7sync@db/c7sync`.
    pub url: String,
    /// How long a writer waits for the lock before giving up with "database is busy".
    pub busy_timeout: Duration,
    /// Connections in the pool (readers run in parallel under WAL; writes serialise).
    pub max_connections: u32,
}

impl StoreSettings {
    /// Defaults suited to the CLI and the daemon.
    pub fn new(url: impl Into<String>) -> Self {
        StoreSettings { url: url.into(), busy_timeout: Duration::from_secs(30), max_connections: 4 }
    }
}

/// The state store.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// Where it was opened, for tests that inspect tables with a client of their own.
    url: Arc<str>,
    health: Arc<health::Health>,
    /// Each teamspace's turn to write, in this process (across processes, SQLite's write lock
    /// or PostgreSQL's advisory lock orders writers): held by every [`WriteSession`] from its
    /// start to its end.
    turns: Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// Names the engine only: the URL may hold a password, and a pool's options print it.
impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("engine", &self.engine()).finish_non_exhaustive()
    }
}

/// How long a request waits for a free connection before it is refused as unavailable (503):
/// long enough for a burst, short enough that a client's own timeout has not fired.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// A teamspace as stored.
#[derive(Debug, Clone)]
pub struct TeamspaceRecord {
    /// Row id.
    pub id: i64,
    /// Slug.
    pub name: TeamspaceName,
    /// Tenant id.
    pub tenant_id: TenantId,
    /// Removal guard.
    pub max_removals: MaxRemovals,
    /// Change counter: bumped by every applied run.
    pub version: i64,
}

/// What the config says about a teamspace; the store mirrors it.
#[derive(Debug, Clone)]
pub struct TeamspaceSpec {
    /// Slug.
    pub name: TeamspaceName,
    /// Tenant id.
    pub tenant_id: TenantId,
    /// MCP API app id.
    pub audience: String,
    /// Required scope.
    pub required_scope: String,
    /// Removal guard.
    pub max_removals: MaxRemovals,
}

/// A source as stored.
#[derive(Debug, Clone)]
pub struct SourceRecord {
    /// Row id, the planner's [`SourceKey`].
    pub id: SourceKey,
    /// `kind:id`.
    pub name: SourceName,
    /// Claims version.
    pub version: i64,
    /// Digest of the last snapshot it applied, with the teamspace version right after.
    pub last_snapshot: Option<([u8; 16], i64)>,
}

const TEAMSPACE_BY_NAME: &str = "SELECT id, name, tenant_id, max_removals, version FROM teamspaces WHERE name = $1";

fn teamspace_of(row: Option<impl Fields>, name: &str) -> Result<TeamspaceRecord, StoreError> {
    let row = row.ok_or_else(|| StoreError::NotFound(format!("teamspace `{name}`")))?;
    let text = |column: &str| row.field::<String>(column);
    Ok(TeamspaceRecord {
        id: row.field("id")?,
        name: text("name")?.parse().map_err(|e| StoreError::corrupt("teamspaces.name", e))?,
        tenant_id: text("tenant_id")?.parse().map_err(|e| StoreError::corrupt("teamspaces.tenant_id", e))?,
        max_removals: text("max_removals")?.parse().map_err(|e| StoreError::corrupt("teamspaces.max_removals", e))?,
        version: row.field("version")?,
    })
}

impl Store {
    /// Opens (creating if needed) and migrates the database: SQLite for a `sqlite:` URL,
    /// PostgreSQL for `postgres://` or `postgresql://`.
    pub async fn open(settings: &StoreSettings) -> Result<Store, StoreError> {
        let (pool, health) = if postgres::is_url(&settings.url) {
            (postgres::open(settings).await?, Arc::new(health::Health::new(None)?))
        } else {
            sqlite::open(settings).await?
        };
        Ok(Store { pool, url: settings.url.as_str().into(), health, turns: Arc::default() })
    }

    /// The engine the state lives on.
    pub fn engine(&self) -> Engine {
        self.pool.engine()
    }

    /// Proves the database takes writes (at start: a read-only file is a clear error, not a
    /// 500 on every later write), and clears a recorded fault once it does again.
    pub async fn check_writable(&self, now: Millis) -> Result<(), StoreError> {
        self.health.check_file()?;
        let written = on_pool!(&self.pool, pool => sqlx::query(
            "INSERT INTO write_probe (id, written_at) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at",
        )
        .bind(now.0)
        .execute(pool)
        .await.map(|done| done.rows_affected()))
        .map(|_| ())
        .map_err(StoreError::from);
        self.health.record(written)
    }

    /// Whether the store can serve and take writes: `/readyz`. A read of the schema, the file
    /// still in place, and while writes have been failing, a write that must succeed.
    pub async fn readiness(&self, now: Millis) -> Result<(), StoreError> {
        if self.health.fault().is_some() {
            return self.check_writable(now).await; // checks the file first
        }
        self.health.check_file()?;
        self.ping().await
    }

    /// Mirrors the configured teamspaces into the database. Refuses to change the tenant of a
    /// teamspace that has members: their oids belong to the old tenant. Every command calls
    /// this, so it only reads unless the config changed: a write here would make read-only
    /// commands wait for (or fail behind) a long import.
    pub async fn sync_teamspaces(&self, specs: &[TeamspaceSpec], now: Millis) -> Result<(), StoreError> {
        on_pool!(&self.pool, pool => {
        let stored: Vec<(String, String, String, String, String)> = {
            sqlx::query_as("SELECT name, tenant_id, audience, required_scope, max_removals FROM teamspaces")
                .fetch_all(pool)
                .await
        }?;
        let stale: Vec<&TeamspaceSpec> = specs
            .iter()
            .filter(|spec| {
                !stored.iter().any(|(name, tenant, audience, scope, removals)| {
                    name == spec.name.as_str()
                        && *tenant == spec.tenant_id.to_string()
                        && *audience == spec.audience
                        && *scope == spec.required_scope
                        && *removals == spec.max_removals.to_string()
                })
            })
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin_write().await?;
        tx.lock("teamspaces").await?;
        for spec in stale {
            let existing: Option<(String, i64)> = on_tx!(&mut tx, c => sqlx::query_as(
                "SELECT t.tenant_id, (SELECT count(*) FROM members m WHERE m.teamspace_id = t.id) \
                 FROM teamspaces t WHERE t.name = $1",
            )
            .bind(spec.name.as_str())
            .fetch_optional(&mut *c)
            .await)?;
            if let Some((tenant, members)) = existing {
                if tenant != spec.tenant_id.to_string() && members > 0 {
                    return Err(StoreError::Refused(format!(
                        "teamspace `{}` has {members} member(s) of tenant {tenant}; changing its tenant_id to {} would \
                         orphan them. Remove them first or use a new teamspace",
                        spec.name, spec.tenant_id
                    )));
                }
            }
            on_tx!(&mut tx, c => sqlx::query(
                "INSERT INTO teamspaces (name, tenant_id, audience, required_scope, max_removals, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6) \
                 ON CONFLICT (name) DO UPDATE SET tenant_id = excluded.tenant_id, audience = excluded.audience, \
                 required_scope = excluded.required_scope, max_removals = excluded.max_removals, updated_at = excluded.updated_at",
            )
            .bind(spec.name.as_str())
            .bind(spec.tenant_id.to_string())
            .bind(&spec.audience)
            .bind(&spec.required_scope)
            .bind(spec.max_removals.to_string())
            .bind(now.0)
            .execute(&mut *c)
            .await.map(|done| done.rows_affected()))?;
        }
        session::commit(tx, &self.health).await
        })
    }

    /// The teamspace called `name`.
    pub async fn teamspace(&self, name: &str) -> Result<TeamspaceRecord, StoreError> {
        on_pool!(&self.pool, pool => {
            let row = sqlx::query(TEAMSPACE_BY_NAME).bind(name).fetch_optional(pool).await?;
            teamspace_of(row, name)
        })
    }

    /// Starts the one kind of transaction that changes members: it waits for the teamspace's
    /// turn in this process, then for its turn across processes (SQLite's write lock, `BEGIN
    /// IMMEDIATE`, waiting up to the busy timeout; PostgreSQL's advisory lock on the
    /// teamspace), so the state it then reads cannot change before it commits. Writers queue
    /// instead of racing; no session exists without both.
    pub async fn begin_write(&self, teamspace: &str) -> Result<WriteSession, StoreError> {
        let turn = {
            let mut turns = self.turns.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            turns.entry(teamspace.to_owned()).or_default().clone()
        };
        let turn = turn.lock_owned().await;
        self.health.check_file()?;
        let mut tx = self.health.record(self.pool.begin_write().await)?;
        tx.lock(&format!("teamspace:{teamspace}")).await?;
        let teamspace = on_tx!(&mut tx, c => {
            let row = sqlx::query(TEAMSPACE_BY_NAME).bind(teamspace).fetch_optional(&mut *c).await?;
            teamspace_of(row, teamspace)?
        });
        Ok(WriteSession { tx, teamspace, health: self.health.clone(), _turn: turn })
    }

    /// Whether the database answers a read of the schema: `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(&self.pool, pool => sqlx::query_scalar::<_, i64>("SELECT count(*) FROM teamspaces").fetch_one(pool).await)?;
        Ok(())
    }

    /// Closes every connection, waiting for those in use. On SQLite it first checkpoints the WAL
    /// and truncates it, so a command that wrote leaves no WAL behind for the next one.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The URL it was opened with, for tests that inspect tables with a client of their own.
    #[doc(hidden)]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The SQLite pool, for tests that inspect tables directly.
    #[doc(hidden)]
    pub fn pool(&self) -> Option<&SqlitePool> {
        match &self.pool {
            Pool::Sqlite(pool) => Some(pool),
            Pool::Postgres(_) => None,
        }
    }
}
