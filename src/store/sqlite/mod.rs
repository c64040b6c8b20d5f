//! What only SQLite has: opening a file with the pragmas the workload was measured with, the
//! packed loading of a teamspace, the bulk write path on the C API, and the files of a large
//! write synced while it runs.

pub(super) mod bulk;
mod in_place;
pub(super) mod packed_sql;
pub(super) mod scim;
pub(super) mod write;
mod write_behind;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Row};

pub(super) use write_behind::{WriteBehind, WRITE_BEHIND_FROM_ROWS};

use super::engine::Pool;
use super::health::Health;
use super::{StoreError, StoreSettings, ACQUIRE_TIMEOUT};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Checkpoints the WAL into the database, then closes every connection. SQLite's own
/// checkpoint when the last connection closes is not enough: the pool closes its connections
/// at once, each one sees another still open, and then none of them checkpoints (CI saw a
/// 16 MB WAL left behind by an import that way). Readers in another process are waited for a
/// moment only: what they keep from the checkpoint, SQLite's automatic checkpoint takes later.
pub(super) async fn close(pool: &SqlitePool) {
    if let Ok(mut connection) = pool.acquire().await {
        let checkpoint = async {
            sqlx::query("PRAGMA busy_timeout = 1000").execute(&mut *connection).await?;
            sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&mut *connection).await
        };
        match checkpoint.await {
            Ok((0, _, _)) => {}
            Ok((_, frames, done)) => {
                tracing::debug!(frames, done, "WAL checkpoint stopped short of a reader; left to SQLite")
            }
            Err(error) => tracing::debug!(%error, "WAL checkpoint before closing failed; left to SQLite"),
        }
        // Its busy timeout is changed: it must not go back into the pool for reuse.
        let _ = connection.detach().close().await;
    }
    pool.close().await;
}

/// Opens (creating if needed) and migrates the database file.
pub(super) async fn open(settings: &StoreSettings) -> Result<(Pool, Arc<Health>), StoreError> {
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
    let health = Arc::new(Health::new(file.as_deref())?);
    let released = health.clone();
    let pool = SqlitePoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // A connection to a local file does not go stale the way a socket does, and the ping
        // sqlx would send first is a round trip to the connection's thread on every acquire.
        .test_before_acquire(false)
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
    Ok((Pool::Sqlite(pool), health))
}
