//! The two engines behind one store: SQLite (one file, the default) and PostgreSQL (shared by
//! several replicas). Most SQL is written once and runs on both; [`on_pool!`] and [`on_tx!`]
//! compile a body once per engine, so each copy is type-checked against its own driver. What
//! only one engine has lives in `store/sqlite/` and `store/postgres/`.

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Decode, PgPool, Postgres, Row, Sqlite, SqlitePool, Transaction, Type};

use super::StoreError;

/// Which engine holds the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// One file on this host.
    Sqlite,
    /// A server that several replicas share.
    Postgres,
}

/// The connection pool of the engine in use.
#[derive(Debug, Clone)]
pub(super) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// An open transaction of the engine in use.
pub(super) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// `on_pool!(&self.pool, pool => body)`: `body` once per engine, with `pool` that engine's pool.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::store::engine::Pool::Sqlite($p) => $body,
            $crate::store::engine::Pool::Postgres($p) => $body,
        }
    };
}

/// `on_tx!(&mut self.tx, c => body)`: `body` once per engine, with `c` the transaction's
/// connection (`&mut *c` to run a statement on it).
macro_rules! on_tx {
    ($tx:expr, $c:ident => $body:expr) => {
        match $tx {
            $crate::store::engine::Tx::Sqlite(tx) => {
                let $c = &mut **tx;
                $body
            }
            $crate::store::engine::Tx::Postgres(tx) => {
                let $c = &mut **tx;
                $body
            }
        }
    };
}

impl Pool {
    pub(super) fn engine(&self) -> Engine {
        match self {
            Pool::Sqlite(_) => Engine::Sqlite,
            Pool::Postgres(_) => Engine::Postgres,
        }
    }

    /// A transaction that writes. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`), so what it reads cannot change before it commits; PostgreSQL writers
    /// that must not interleave also take an advisory lock ([`Tx::lock`]).
    pub(super) async fn begin_write(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            Pool::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    pub(super) async fn close(&self) {
        match self {
            Pool::Sqlite(pool) => super::sqlite::close(pool).await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }
}

impl Tx {
    /// Waits for, then holds until the transaction ends, the lock named `key`: how writers of
    /// one teamspace on different replicas take turns. SQLite's write lock already orders
    /// every writer, so there it is a no-op.
    pub(super) async fn lock(&mut self, key: &str) -> Result<(), StoreError> {
        if let Tx::Postgres(tx) = self {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(format!("c7sync:{key}"))
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    pub(super) async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// A value both drivers decode.
pub(super) trait Value:
    for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

impl<T> Value for T where T: for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres> {}

/// A result row of either engine, read by column name or position: row mapping is written
/// once for both.
pub(super) trait Fields {
    /// The column called `name`.
    fn field<T: Value>(&self, name: &str) -> Result<T, StoreError>;
    /// The column at `index`.
    fn field_at<T: Value>(&self, index: usize) -> Result<T, StoreError>;
}

macro_rules! fields_of {
    ($row:ty) => {
        impl Fields for $row {
            fn field<T: Value>(&self, name: &str) -> Result<T, StoreError> {
                Ok(Row::try_get(self, name)?)
            }
            fn field_at<T: Value>(&self, index: usize) -> Result<T, StoreError> {
                Ok(Row::try_get(self, index)?)
            }
        }
    };
}

fields_of!(SqliteRow);
fields_of!(PgRow);
