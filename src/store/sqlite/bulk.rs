//! Bulk writes through SQLite's C API, on the write session's own connection.
//!
//! A plan can hold a million changes, each of them four rows (member, claim, audit event,
//! outbox entry). Through sqlx every statement is handed to a worker thread, with each
//! argument first copied into an owned list; for a million-row import that hand-off cost
//! more than SQLite's own B-tree work (BENCHMARKS.md). Here rows are bound straight from the
//! plan into prepared multi-row statements ([`ChunkedInsert`]) on the calling thread. The
//! statements run on the very connection sqlx lends out with `lock_handle`, so the rows join
//! the session's open transaction and commit or roll back with everything else it wrote.

use rusqlite::{Connection, Statement, ToSql};
use tokio::runtime::{Handle, RuntimeFlavor};

use sqlx::{Sqlite, Transaction};

use crate::store::StoreError;

/// Runs `work` with the session's connection as a rusqlite [`Connection`], inside the open
/// transaction. `work` must leave no statement running (rusqlite finalizes its statements
/// when they drop, which is before this returns). `rows` is how many rows it writes or reads.
pub(in crate::store) async fn with_connection<T>(
    tx: &mut Transaction<'static, Sqlite>,
    rows: usize,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut locked = (**tx).lock_handle().await?;
    let handle = locked.as_raw_handle();
    // SAFETY: `locked` keeps sqlx's worker thread off this handle until it drops, after
    // `work` and the borrowed Connection are gone; `from_handle` never closes the handle.
    // Both crates link the same libsqlite3-sys (Cargo.lock has one), so the handle's type is
    // the one rusqlite expects.
    #[allow(unsafe_code)]
    let connection = unsafe { Connection::from_handle(handle.as_ptr()) }?;
    let result = if rows > STALLS_ABOVE_ROWS { blocking(|| work(&connection)) } else { work(&connection) };
    drop(connection);
    drop(locked);
    result
}

/// Work on more rows than this hands the worker's other tasks away first. Below it, the
/// work takes well under a millisecond, less than the hand-off itself costs (a thread woken
/// to take over the worker): a SCIM batch writes a few dozen rows.
const STALLS_ABOVE_ROWS: usize = 4096;

/// Runs CPU-bound `work` on this thread. On the daemon's multi-threaded runtime the worker's
/// other tasks (SCIM requests, the scheduler) are handed to another thread first, so a
/// million-row write does not stall them; a current-thread runtime has nowhere to hand them.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// Rows per multi-row `INSERT` statement. Stepping one single-row statement per row costs
/// more than the B-tree work it does (each step opens a cursor, seeks from the root and
/// halts), so full chunks go through one statement with this many rows (4,096-row statements
/// measured no faster; BENCHMARKS.md). The rows that do not fill a last chunk go one at a time.
pub(super) const INSERT_CHUNK_ROWS: usize = 256;

/// One `INSERT` fed a known number of rows, one at a time: the rows of full chunks are bound
/// into a prepared multi-row statement, which runs when its last row is bound; the rows past
/// the last full chunk go through its single-row twin. Knowing the count up front is what
/// lets rows be bound straight from the caller's data instead of being buffered.
pub(super) struct ChunkedInsert<'c> {
    /// Prepared only when there is a full chunk: parsing a 256-row statement costs more than
    /// the few rows of a SCIM batch do to write.
    chunk: Option<Statement<'c>>,
    single: Option<Statement<'c>>,
    columns: usize,
    /// Rows that go through `chunk`: the declared count rounded down to whole chunks.
    chunked_rows: usize,
    declared: usize,
    pushed: usize,
    table: &'static str,
}

impl<'c> ChunkedInsert<'c> {
    /// An insert of exactly `rows` rows into `table`'s `columns` (comma-separated names).
    pub(super) fn prepare(
        connection: &'c Connection,
        table: &'static str,
        columns: &str,
        rows: usize,
    ) -> rusqlite::Result<Self> {
        let head = format!("INSERT INTO {table} ({columns}) VALUES");
        let width = columns.split(',').count();
        let row = format!("({})", vec!["?"; width].join(", "));
        let chunked_rows = rows - rows % INSERT_CHUNK_ROWS;
        let chunk = match chunked_rows {
            0 => None,
            _ => Some(connection.prepare(&format!("{head} {}", vec![row.as_str(); INSERT_CHUNK_ROWS].join(", ")))?),
        };
        let single = (rows > chunked_rows).then(|| connection.prepare(&format!("{head} {row}"))).transpose()?;
        Ok(ChunkedInsert { chunk, single, columns: width, chunked_rows, declared: rows, pushed: 0, table })
    }

    /// Adds one row; `bind` binds its values in column order.
    pub(super) fn push<E: From<rusqlite::Error>>(
        &mut self,
        bind: impl FnOnce(&mut RowValues<'_, 'c>) -> Result<(), E>,
    ) -> Result<(), E> {
        let row = self.pushed;
        self.pushed += 1;
        let (statement, slot) = match (row < self.chunked_rows, &mut self.chunk, &mut self.single) {
            (true, Some(chunk), _) => (chunk, row % INSERT_CHUNK_ROWS),
            (false, _, Some(single)) => (single, 0),
            // More rows than declared: not written, and `finish` reports the miscount.
            _ => return Ok(()),
        };
        bind(&mut RowValues { statement, next: slot * self.columns + 1 })?;
        if row >= self.chunked_rows || slot == INSERT_CHUNK_ROWS - 1 {
            statement.raw_execute()?;
        }
        Ok(())
    }

    /// Checks every declared row was pushed (a chunk left half-bound would be lost).
    pub(super) fn finish(self) -> Result<(), StoreError> {
        if self.pushed == self.declared {
            return Ok(());
        }
        Err(StoreError::corrupt(
            self.table,
            format!("{} rows were given where the plan counted {}", self.pushed, self.declared),
        ))
    }
}

/// Binds one row's values, left to right.
pub(super) struct RowValues<'s, 'c> {
    statement: &'s mut Statement<'c>,
    next: usize,
}

impl RowValues<'_, '_> {
    /// Binds the next column's value.
    pub(super) fn value(&mut self, value: impl ToSql) -> rusqlite::Result<&mut Self> {
        self.statement.raw_bind_parameter(self.next, value)?;
        self.next += 1;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn table() -> Connection {
        let connection = Connection::open_in_memory().unwrap();
        connection.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY, label TEXT NOT NULL)").unwrap();
        connection
    }

    fn push_rows(insert: &mut ChunkedInsert<'_>, rows: std::ops::Range<i64>) {
        for n in rows {
            insert
                .push(|row| {
                    row.value(n)?.value(format!("row {n}"))?;
                    Ok::<_, StoreError>(())
                })
                .unwrap();
        }
    }

    #[test]
    fn every_row_lands_whether_it_fills_a_chunk_or_not() {
        for rows in [0, 1, INSERT_CHUNK_ROWS - 1, INSERT_CHUNK_ROWS, INSERT_CHUNK_ROWS + 1, 2 * INSERT_CHUNK_ROWS + 88]
        {
            let connection = table();
            let mut insert = ChunkedInsert::prepare(&connection, "t", "n, label", rows).unwrap();
            push_rows(&mut insert, 0..rows as i64);
            insert.finish().unwrap();
            let (count, sum, labelled): (i64, Option<i64>, i64) = connection
                .query_row("SELECT count(*), sum(n), count(*) FILTER (WHERE label = 'row ' || n) FROM t", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .unwrap();
            let rows = rows as i64;
            assert_eq!((count, sum.unwrap_or(0), labelled), (rows, rows * (rows - 1) / 2, rows), "{rows} rows");
        }
    }

    #[test]
    fn fewer_rows_than_declared_is_an_error_not_a_silent_loss() {
        let connection = table();
        let mut insert = ChunkedInsert::prepare(&connection, "t", "n, label", INSERT_CHUNK_ROWS).unwrap();
        push_rows(&mut insert, 0..INSERT_CHUNK_ROWS as i64 - 1);
        let error = insert.finish().unwrap_err().to_string();
        assert!(error.contains("255 rows were given where the plan counted 256"), "{error}");
    }

    #[test]
    fn more_rows_than_declared_is_an_error_too() {
        for declared in [0, 3, INSERT_CHUNK_ROWS] {
            let connection = table();
            let mut insert = ChunkedInsert::prepare(&connection, "t", "n, label", declared).unwrap();
            push_rows(&mut insert, 0..declared as i64 + 1);
            let error = insert.finish().unwrap_err().to_string();
            assert!(
                error.contains(&format!("{} rows were given where the plan counted {declared}", declared + 1)),
                "{error}"
            );
        }
    }

    #[test]
    fn a_constraint_failure_in_a_chunk_is_reported() {
        let connection = table();
        let mut insert = ChunkedInsert::prepare(&connection, "t", "n, label", INSERT_CHUNK_ROWS).unwrap();
        push_rows(&mut insert, 0..INSERT_CHUNK_ROWS as i64 - 1);
        let duplicate = insert.push(|row| {
            row.value(0)?.value("again")?;
            Ok::<_, StoreError>(())
        });
        assert!(matches!(duplicate, Err(StoreError::Duplicate(_))), "{duplicate:?}");
    }
}
