//! The state store: the only module that speaks SQL. Exposes domain verbs (load the current
//! members, apply a plan in one transaction, list runs) over SQLite through sqlx.

/// SQL for a source row aliased `s` as its `kind:id` name (`manual`, `csv:hr`): one spelling
/// for every query that shows sources, usable in `concat!`.
macro_rules! source_label {
    () => {
        "(s.kind || CASE WHEN s.name = '' THEN '' ELSE ':' || s.name END)"
    };
}

mod apply;
mod bulk;
mod error;
mod events;
mod health;
mod history;
mod integrity;
mod members;
mod owner;
mod packed;
mod replicas;
mod running;
mod scim;
mod scim_condition;
mod session;
mod values;
mod words;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use std::path::Path;

use sqlx::{ConnectOptions, Connection, Row, SqlitePool};

pub use apply::{NewRun, Outcome, RunInput, RunStatus};
pub use error::{StoreError, UniqueKey};
pub use events::{Event, EventFilter, EventState, PendingHead};
pub use history::{AuditEntry, AuditFilter, PlannedChange, RunRecord, RunTotals, TeamspaceSummary};
pub use members::{MemberRecord, Scope};
pub use running::INTERRUPTED;
pub use scim::{GroupRow, ResourceKind, ScimTokenRecord, ScimUserFacts, StoredResource, TokenCredential, UserRow};
pub use scim_condition::{IndexedAttribute, ScimCondition};
pub use session::WriteSession;
pub use words::{AuditAction, DeliveryStatus, MemberEffect};

use crate::clock::Millis;
use crate::domain::{MaxRemovals, SourceName, TeamspaceName, TenantId};
use crate::plan::SourceKey;

/// How to open the store. Built by the caller from config and flags; the store reads no env.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// sqlx URL, e.g. `sqlite://c7sync.db` or `sqlite::memory:`.
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
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    health: Arc<health::Health>,
    /// Each teamspace's turn to write, in this process (across processes, SQLite's write lock
    /// orders writers): held by every [`WriteSession`] from its start to its end.
    turns: Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// How long a request waits for a free connection before it is refused as unavailable (503):
/// long enough for a burst, short enough that a client's own timeout has not fired.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

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

fn teamspace_of(row: Option<sqlx::sqlite::SqliteRow>, name: &str) -> Result<TeamspaceRecord, StoreError> {
    let row = row.ok_or_else(|| StoreError::NotFound(format!("teamspace `{name}`")))?;
    let text = |column: &str| row.try_get::<String, _>(column);
    Ok(TeamspaceRecord {
        id: row.try_get("id")?,
        name: text("name")?.parse().map_err(|e| StoreError::corrupt("teamspaces.name", e))?,
        tenant_id: text("tenant_id")?.parse().map_err(|e| StoreError::corrupt("teamspaces.tenant_id", e))?,
        max_removals: text("max_removals")?.parse().map_err(|e| StoreError::corrupt("teamspaces.max_removals", e))?,
        version: row.try_get("version")?,
    })
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl Store {
    /// Opens (creating if needed) and migrates the database.
    pub async fn open(settings: &StoreSettings) -> Result<Store, StoreError> {
        let options = SqliteConnectOptions::from_str(&settings.url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL under WAL never corrupts; a power cut may lose the last commits, which the
            // next run of the source re-applies.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(settings.busy_timeout)
            // Bulk writes append in key order, so only each B-tree's right edge must stay hot:
            // 16 MiB measured as fast as 64 MiB on a million-member import, with 48 MiB less RSS.
            .pragma("cache_size", "-16384")
            .pragma("temp_store", "memory")
            // New databases only. Fewer, larger pages mean fewer B-tree splits and WAL frames:
            // a million-member import's write phase measured 9.2-9.9 s against 10.2-10.9 s
            // at SQLite's default 4 KiB (BENCHMARKS.md, schema choices of the CSV import).
            .page_size(16384);
        // Migrations run on a connection of their own with foreign keys off, which SQLite's
        // procedure for rebuilding a table requires (0004). When one was applied, every key
        // is checked afterwards; otherwise that whole-database scan is skipped, since every
        // command opens the store.
        let mut migrating = options.clone().foreign_keys(false).connect().await?;
        const APPLIED: &str = "SELECT count(*) FROM _sqlx_migrations";
        // No table yet (a new database) counts as none applied.
        let before: i64 = sqlx::query_scalar(APPLIED).fetch_one(&mut migrating).await.unwrap_or(0);
        MIGRATOR.run(&mut migrating).await?;
        let after: i64 = sqlx::query_scalar(APPLIED).fetch_one(&mut migrating).await?;
        let broken: Vec<SqliteRow> = if after > before {
            sqlx::query("PRAGMA foreign_key_check").fetch_all(&mut migrating).await?
        } else {
            Vec::new()
        };
        if let Some(row) = broken.first() {
            let table: String = row.try_get(0)?;
            return Err(StoreError::corrupt(
                "schema",
                format!("{} foreign key(s) broken after migrating, first in {table}", broken.len()),
            ));
        }
        migrating.close().await?;
        let file = (!options.get_filename().as_os_str().is_empty() && options.get_filename() != Path::new(":memory:"))
            .then(|| options.get_filename().to_owned())
            .filter(|path| path.is_file());
        let health = Arc::new(health::Health::new(file.as_deref())?);
        let released = health.clone();
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_release(move |connection, _| {
                let faulty = released.fault().is_some();
                Box::pin(async move {
                    // While writes fail, connections are not reused: one opened read-only stays
                    // read-only, and a fresh one sees fixed permissions.
                    if faulty {
                        return Ok(false);
                    }
                    if connection.is_in_transaction() {
                        // A dropped transaction's rollback is queued before this ping; a
                        // connection still inside one after it (its COMMIT and ROLLBACK both
                        // failed, as on a full disk) would refuse every later BEGIN.
                        connection.ping().await?;
                    }
                    Ok(!connection.is_in_transaction())
                })
            })
            // Never a new empty file in place of one deleted under us.
            .connect_with(options.create_if_missing(file.is_none()))
            .await?;
        Ok(Store { pool, health, turns: Arc::default() })
    }

    /// Proves the database takes writes (at start: a read-only file is a clear error, not a
    /// 500 on every later write), and clears a recorded fault once it does again.
    pub async fn check_writable(&self, now: Millis) -> Result<(), StoreError> {
        self.health.check_file()?;
        let written = sqlx::query(
            "INSERT INTO write_probe (id, written_at) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at",
        )
        .bind(now.0)
        .execute(&self.pool)
        .await
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
        let stored: Vec<(String, String, String, String, String)> =
            sqlx::query_as("SELECT name, tenant_id, audience, required_scope, max_removals FROM teamspaces")
                .fetch_all(&self.pool)
                .await?;
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for spec in stale {
            let existing = sqlx::query(
                "SELECT t.tenant_id, (SELECT count(*) FROM members m WHERE m.teamspace_id = t.id) \
                 FROM teamspaces t WHERE t.name = $1",
            )
            .bind(spec.name.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = existing {
                let tenant: String = row.try_get(0)?;
                let members: i64 = row.try_get(1)?;
                if tenant != spec.tenant_id.to_string() && members > 0 {
                    return Err(StoreError::Refused(format!(
                        "teamspace `{}` has {members} member(s) of tenant {tenant}; changing its tenant_id to {} would \
                         orphan them. Remove them first or use a new teamspace",
                        spec.name, spec.tenant_id
                    )));
                }
            }
            sqlx::query(
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
            .execute(&mut *tx)
            .await?;
        }
        session::commit(tx, &self.health).await
    }

    /// The teamspace called `name`.
    pub async fn teamspace(&self, name: &str) -> Result<TeamspaceRecord, StoreError> {
        let row = sqlx::query(TEAMSPACE_BY_NAME).bind(name).fetch_optional(&self.pool).await?;
        teamspace_of(row, name)
    }

    /// Starts the one kind of transaction that changes members: it waits for the teamspace's
    /// turn in this process, then takes SQLite's write lock (`BEGIN IMMEDIATE`, waiting up to
    /// the busy timeout), so the state it then reads cannot change before it commits. Writers
    /// queue instead of racing; no session exists without both.
    pub async fn begin_write(&self, teamspace: &str) -> Result<WriteSession, StoreError> {
        let turn = {
            let mut turns = self.turns.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            turns.entry(teamspace.to_owned()).or_default().clone()
        };
        let turn = turn.lock_owned().await;
        self.health.check_file()?;
        let mut tx = self.health.record(self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(StoreError::from))?;
        let row = sqlx::query(TEAMSPACE_BY_NAME).bind(teamspace).fetch_optional(&mut *tx).await?;
        let teamspace = teamspace_of(row, teamspace)?;
        Ok(WriteSession { tx, teamspace, health: self.health.clone(), _turn: turn })
    }

    /// Whether the database answers a read of the schema: `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT count(*) FROM teamspaces").fetch_one(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection, waiting for those in use. SQLite checkpoints the WAL when its
    /// last connection closes, so a command that wrote leaves no WAL behind for the next one.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The pool, for tests that inspect tables directly.
    #[doc(hidden)]
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}
