//! The store's one error type, and the single place sqlx errors are classified.

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A named row does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The database stayed locked by another writer past the busy timeout.
    #[error("the database is busy (locked by another writer): {0}")]
    Busy(sqlx::Error),
    /// A unique constraint was violated: which one.
    #[error("already exists: {0}")]
    Duplicate(UniqueKey),
    /// The request is refused by a store rule; the message says why.
    #[error("{0}")]
    Refused(String),
    /// A stored value does not parse: the database was edited by hand or is damaged.
    #[error("stored value in {column} is invalid: {message}")]
    Corrupt {
        /// Table and column.
        column: &'static str,
        /// Parser message.
        message: String,
    },
    /// Migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database cannot take writes (or answer) for now: disk full, I/O error, read-only
    /// file, file deleted or replaced, no free connection. Clients should retry later; the
    /// store recovers by itself once the cause is gone (except a replaced file: restart).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// Anything else from the database.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// A failure in the bulk write path, which speaks to SQLite directly (`bulk.rs`).
    #[error("database error: {0}")]
    Bulk(rusqlite::Error),
}

/// The uniqueness rule a write broke, for the callers that tell the client which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UniqueKey {
    /// A SCIM User's `userName` (case-insensitive) is taken in the teamspace.
    ScimUserName,
    /// A SCIM User's `externalId` is taken in the teamspace.
    ScimExternalId,
    /// Another rule, as the database names it.
    Other(String),
}

impl std::fmt::Display for UniqueKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UniqueKey::ScimUserName => f.write_str("a SCIM user with this userName"),
            UniqueKey::ScimExternalId => f.write_str("a SCIM user with this externalId"),
            UniqueKey::Other(rule) => f.write_str(rule),
        }
    }
}

impl UniqueKey {
    /// The rule from the index's name (what PostgreSQL reports) or, as SQLite reports only the
    /// columns (`UNIQUE constraint failed: scim_users.teamspace_id, scim_users.user_name_key`),
    /// from those.
    fn of(constraint: Option<&str>, message: &str) -> Self {
        match constraint {
            Some("scim_users_by_user_name") => UniqueKey::ScimUserName,
            Some("scim_users_by_external_id") => UniqueKey::ScimExternalId,
            Some(_) => UniqueKey::Other(message.to_owned()),
            None if message.ends_with("scim_users.user_name_key") => UniqueKey::ScimUserName,
            None if message.ends_with("scim_users.external_id") => UniqueKey::ScimExternalId,
            None => UniqueKey::Other(message.to_owned()),
        }
    }
}

impl StoreError {
    pub(crate) fn corrupt(column: &'static str, message: impl ToString) -> Self {
        StoreError::Corrupt { column, message: message.to_string() }
    }

    /// Whether retrying later can succeed without anyone changing the request: the caller
    /// answers 503 with `Retry-After`, not 500.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Busy(_) | StoreError::Unavailable(_))
    }
}

/// SQLite primary result codes that mean the storage, not the statement, failed:
/// SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN.
fn is_storage_code(code: i32) -> bool {
    matches!(code & 0xff, 8 | 10 | 13 | 14)
}

/// How a PostgreSQL error's SQLSTATE reads to a caller.
#[derive(Debug, PartialEq, Eq)]
enum PostgresClass {
    /// Another transaction is in the way; retrying shortly can succeed.
    Busy,
    /// The server cannot serve for now: connection lost, shutting down or starting, out of
    /// disk, memory or connections, or a standby that takes no writes (mid-failover).
    Unavailable,
    /// The statement itself failed.
    Statement,
}

fn postgres_class(sqlstate: &str) -> PostgresClass {
    match sqlstate {
        // serialization_failure, deadlock_detected, lock_not_available (lock_timeout),
        // query_canceled (statement_timeout).
        "40001" | "40P01" | "55P03" | "57014" => PostgresClass::Busy,
        // admin_shutdown, crash_shutdown, cannot_connect_now, read_only_sql_transaction.
        "57P01" | "57P02" | "57P03" | "25006" => PostgresClass::Unavailable,
        // connection_exception, insufficient_resources, system_error (I/O).
        _ if sqlstate.starts_with("08") || sqlstate.starts_with("53") || sqlstate.starts_with("58") => {
            PostgresClass::Unavailable
        }
        _ => PostgresClass::Statement,
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::RowNotFound => StoreError::NotFound("row".into()),
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Duplicate(UniqueKey::of(db.constraint(), db.message()))
            }
            // PostgreSQL's SQLSTATEs are five characters, some all digits: classified before
            // the numeric SQLite codes below could misread one.
            sqlx::Error::Database(db) if db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some() => {
                match db.code().as_deref().map(postgres_class) {
                    Some(PostgresClass::Busy) => StoreError::Busy(error),
                    Some(PostgresClass::Unavailable) => StoreError::Unavailable(db.message().to_owned()),
                    _ => StoreError::Database(error),
                }
            }
            // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with or without extended codes.
            sqlx::Error::Database(db)
                if db.code().is_some_and(|c| c.parse::<i32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6))) =>
            {
                StoreError::Busy(error)
            }
            sqlx::Error::Database(db) if db.code().is_some_and(|c| c.parse::<i32>().is_ok_and(is_storage_code)) => {
                StoreError::Unavailable(db.message().to_owned())
            }
            sqlx::Error::PoolTimedOut => {
                StoreError::Unavailable("every database connection stayed in use past the acquire timeout".into())
            }
            sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
                StoreError::Unavailable(error.to_string())
            }
            _ => StoreError::Database(error),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        // No busy case: bulk writes run inside a session that already holds the write lock.
        if is_unique_violation(&error) {
            return StoreError::Duplicate(UniqueKey::of(None, &error.to_string()));
        }
        if let rusqlite::Error::SqliteFailure(e, _) = &error {
            if is_storage_code(e.extended_code) {
                return StoreError::Unavailable(error.to_string());
            }
        }
        StoreError::Bulk(error)
    }
}

fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(e, _)
        if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

#[cfg(test)]
mod tests {
    use super::{postgres_class, PostgresClass, UniqueKey};

    #[test]
    fn postgres_errors_are_classified_by_sqlstate() {
        for busy in ["40001", "40P01", "55P03", "57014"] {
            assert_eq!(postgres_class(busy), PostgresClass::Busy, "{busy}");
        }
        for gone in ["08006", "08001", "53100", "53300", "57P01", "57P03", "25006", "58030"] {
            assert_eq!(postgres_class(gone), PostgresClass::Unavailable, "{gone}");
        }
        for statement in ["42P01", "23502", "22P02", "42703"] {
            assert_eq!(postgres_class(statement), PostgresClass::Statement, "{statement}");
        }
    }

    #[test]
    fn unique_keys_come_from_index_names_or_sqlite_columns() {
        assert_eq!(UniqueKey::of(Some("scim_users_by_user_name"), "duplicate key value"), UniqueKey::ScimUserName);
        assert_eq!(UniqueKey::of(Some("scim_users_by_external_id"), "duplicate key value"), UniqueKey::ScimExternalId);
        let sqlite = "UNIQUE constraint failed: scim_users.teamspace_id, scim_users.user_name_key";
        assert_eq!(UniqueKey::of(None, sqlite), UniqueKey::ScimUserName);
        let sqlite = "UNIQUE constraint failed: scim_users.teamspace_id, scim_users.external_id";
        assert_eq!(UniqueKey::of(None, sqlite), UniqueKey::ScimExternalId);
        let other = "UNIQUE constraint failed: teamspaces.name";
        assert_eq!(UniqueKey::of(None, other), UniqueKey::Other(other.into()));
    }
}
