//! What only PostgreSQL has: opening a shared server (migrations under sqlx's advisory lock,
//! so replicas starting at once apply them once) and the write path built on arrays.

mod copy;
pub(super) mod packed_sql;
pub(super) mod scim;
pub(super) mod write;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;

use super::engine::Pool;
use super::{StoreError, StoreSettings, ACQUIRE_TIMEOUT};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Whether `url` names a PostgreSQL server.
pub(super) fn is_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Connects and migrates. The server must already exist; the database must too (creating
/// databases is the operator's decision, with the rights that takes).
pub(super) async fn open(settings: &StoreSettings) -> Result<Pool, StoreError> {
    let options = PgConnectOptions::from_str(&settings.url)?
        .application_name("c7sync")
        // A statement that waits this long for a row lock is stuck, not busy.
        .options([("lock_timeout", format!("{}", settings.busy_timeout.as_millis()))]);
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(Pool::Postgres(pool))
}
