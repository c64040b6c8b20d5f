//! Bulk writes through SQLite's C API, on the write session's own connection.
//!
//! A plan can hold a million changes, each of them three rows (member, claim, audit event). Through sqlx every statement is handed to a worker thread, with each
//! argument first copied into an owned list; for a million-row import that hand-off cost
//! more than SQLite's own B-tree work (BENCHMARKS.md). Here rows are bound straight from the
//! plan into prepared multi-row statements ([`ChunkedInsert`]) on the calling thread. The
//! statements run on the very connection sqlx lends out with `lock_handle`, so the rows join
//! the session's open transaction and commit or roll back with everything else it wrote.

use std::ffi::c_int;

use rusqlite::Connection;
use tokio::runtime::{Handle, RuntimeFlavor};

use sqlx::{Sqlite, Transaction};

use super::in_place::{InPlaceStatement, Value};
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

/// A value every row of one insert shares (its run, teamspace, time), written into the
/// statement once as a literal instead of being bound on every row: a million-member write
/// bound 27 values per member, 14 of them the same for every row (BENCHMARKS.md).
#[derive(Debug, Clone, Copy)]
pub(super) enum Shared {
    Int(i64),
    /// Program text only, never input: it is quoted, but it is SQL.
    Text(&'static str),
}

impl Shared {
    fn literal(self) -> String {
        match self {
            Shared::Int(value) => value.to_string(),
            Shared::Text(text) => format!("'{}'", text.replace('\'', "''")),
        }
    }
}

/// One `INSERT` fed a known number of rows, one at a time: the rows of full chunks are bound
/// into a prepared multi-row statement, which runs when its last row is bound; the rows past
/// the last full chunk go through its single-row twin. Knowing the count up front is what
/// lets rows be bound straight from the caller's data instead of being buffered: the values
/// are read where they are, so they are borrowed for `'v`.
pub(super) struct ChunkedInsert<'c, 'v> {
    /// Prepared only when there is a full chunk: parsing a 256-row statement costs more than
    /// the few rows of a SCIM batch do to write.
    chunk: Option<InPlaceStatement<'c, 'v>>,
    single: Option<InPlaceStatement<'c, 'v>>,
    columns: usize,
    /// Rows that go through `chunk`: the declared count rounded down to whole chunks.
    chunked_rows: usize,
    declared: usize,
    pushed: usize,
    table: &'static str,
}

impl<'c, 'v> ChunkedInsert<'c, 'v> {
    /// An insert of exactly `rows` rows into `table`: each row binds `columns`
    /// (comma-separated names), in order, and takes the `shared` columns' values as they are.
    pub(super) fn prepare(
        connection: &'c Connection,
        table: &'static str,
        columns: &str,
        shared: &[(&str, Shared)],
        rows: usize,
    ) -> rusqlite::Result<Self> {
        // OR FAIL: a multi-row statement that can abort part-way makes SQLite copy every page
        // it touches into a statement journal first, to undo just that statement. Nothing
        // here needs that: a failed insert fails the whole write, whose transaction is then
        // rolled back with every row it wrote. (SQLite still journals a statement that calls
        // a function, as a CHECK constraint calling one would: migration 0011.)
        let names = std::iter::once(columns).chain(shared.iter().map(|(name, _)| *name));
        let head = format!("INSERT OR FAIL INTO {table} ({}) VALUES", names.collect::<Vec<_>>().join(", "));
        let width = columns.split(',').count();
        let values = std::iter::repeat_n("?".to_owned(), width).chain(shared.iter().map(|(_, value)| value.literal()));
        let row = format!("({})", values.collect::<Vec<_>>().join(", "));
        let chunked_rows = rows - rows % INSERT_CHUNK_ROWS;
        let chunk = match chunked_rows {
            0 => None,
            _ => Some(InPlaceStatement::prepare(
                connection,
                &format!("{head} {}", vec![row.as_str(); INSERT_CHUNK_ROWS].join(", ")),
            )?),
        };
        let single = (rows > chunked_rows)
            .then(|| InPlaceStatement::prepare(connection, &format!("{head} {row}")))
            .transpose()?;
        Ok(ChunkedInsert { chunk, single, columns: width, chunked_rows, declared: rows, pushed: 0, table })
    }

    /// Adds one row; `bind` binds its values in column order.
    pub(super) fn push<E: From<rusqlite::Error>>(
        &mut self,
        bind: impl FnOnce(&mut RowValues<'_, 'c, 'v>) -> Result<(), E>,
    ) -> Result<(), E> {
        let row = self.pushed;
        self.pushed += 1;
        let (statement, slot) = match (row < self.chunked_rows, &mut self.chunk, &mut self.single) {
            (true, Some(chunk), _) => (chunk, row % INSERT_CHUNK_ROWS),
            (false, _, Some(single)) => (single, 0),
            // More rows than declared: not written, and `finish` reports the miscount.
            _ => return Ok(()),
        };
        // At most 256 rows of a dozen columns: far inside c_int.
        let next = c_int::try_from(slot * self.columns + 1).map_err(|_| rusqlite::Error::InvalidQuery)?;
        bind(&mut RowValues { statement, next })?;
        if row >= self.chunked_rows || slot == INSERT_CHUNK_ROWS - 1 {
            statement.execute()?;
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
pub(super) struct RowValues<'s, 'c, 'v> {
    statement: &'s mut InPlaceStatement<'c, 'v>,
    next: c_int,
}

impl<'v> RowValues<'_, '_, 'v> {
    /// Binds the next column's value.
    pub(super) fn value(&mut self, value: impl Value<'v>) -> rusqlite::Result<&mut Self> {
        value.bind(self.statement, self.next)?;
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

    /// Each row's label, which the statement reads in place: made before the insert that
    /// borrows them.
    fn labels(rows: usize) -> Vec<String> {
        (0..rows).map(|n| format!("row {n}")).collect()
    }

    fn push_rows<'v>(insert: &mut ChunkedInsert<'_, 'v>, labels: &'v [String]) {
        for (n, label) in (0_i64..).zip(labels) {
            insert
                .push(|row| {
                    row.value(n)?.value(label.as_str())?;
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
            let labels = labels(rows);
            let mut insert = ChunkedInsert::prepare(&connection, "t", "n, label", &[], rows).unwrap();
            push_rows(&mut insert, &labels);
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
    fn shared_values_land_in_every_row_of_chunks_and_tail() {
        let connection = Connection::open_in_memory().unwrap();
        connection.execute_batch("CREATE TABLE s (n INTEGER PRIMARY KEY, label TEXT, run INTEGER, note TEXT)").unwrap();
        let rows = INSERT_CHUNK_ROWS + 3;
        let labels = labels(rows);
        let shared = [("run", Shared::Int(-1_733_523_456_789)), ("note", Shared::Text("it's shared"))];
        let mut insert = ChunkedInsert::prepare(&connection, "s", "n, label", &shared, rows).unwrap();
        push_rows(&mut insert, &labels);
        insert.finish().unwrap();
        let (count, labelled, runs, notes): (i64, i64, i64, i64) = connection
            .query_row(
                "SELECT count(*), count(*) FILTER (WHERE label = 'row ' || n), \
                 count(*) FILTER (WHERE run = -1733523456789), count(*) FILTER (WHERE note = 'it''s shared') FROM s",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        let rows = rows as i64;
        assert_eq!((count, labelled, runs, notes), (rows, rows, rows, rows));
    }

    #[test]
    fn fewer_rows_than_declared_is_an_error_not_a_silent_loss() {
        let connection = table();
        let labels = labels(INSERT_CHUNK_ROWS - 1);
        let mut insert = ChunkedInsert::prepare(&connection, "t", "n, label", &[], INSERT_CHUNK_ROWS).unwrap();
        push_rows(&mut insert, &labels);
        let error = insert.finish().unwrap_err().to_string();
        assert!(error.contains("255 rows were given where the plan counted 256"), "{error}");
    }

    #[test]
    fn more_rows_than_declared_is_an_error_too() {
        for declared in [0, 3, INSERT_CHUNK_ROWS] {
            let connection = table();
            let labels = labels(declared + 1);
            let mut insert = ChunkedInsert::prepare(&connection, "t", "n, label", &[], declared).unwrap();
            push_rows(&mut insert, &labels);
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
        let labels = labels(INSERT_CHUNK_ROWS - 1);
        let mut insert = ChunkedInsert::prepare(&connection, "t", "n, label", &[], INSERT_CHUNK_ROWS).unwrap();
        push_rows(&mut insert, &labels);
        let duplicate = insert.push(|row| {
            row.value(0)?.value("again")?;
            Ok::<_, StoreError>(())
        });
        assert!(matches!(duplicate, Err(StoreError::Duplicate(_))), "{duplicate:?}");
    }

    #[test]
    fn text_blobs_and_nulls_are_stored_as_bound_in_every_chunk() {
        let connection = Connection::open_in_memory().unwrap();
        connection.execute_batch("CREATE TABLE v (n INTEGER PRIMARY KEY, label TEXT, key BLOB)").unwrap();
        let rows = 2 * INSERT_CHUNK_ROWS + 3;
        // Non-ASCII text, and an empty blob beside full ones: lengths are bytes, not characters.
        let labels: Vec<String> = (0..rows).map(|n| format!("ünïcode {n}")).collect();
        let keys: Vec<Vec<u8>> = (0..rows).map(|n| (0..n % 17).map(|b| b as u8).collect()).collect();
        let mut insert = ChunkedInsert::prepare(&connection, "v", "n, label, key", &[], rows).unwrap();
        for (n, (label, key)) in (0_i64..).zip(labels.iter().zip(&keys)) {
            let label = (n % 5 != 0).then_some(label.as_str());
            insert
                .push(|row| {
                    row.value(n)?.value(label)?.value(key.as_slice())?;
                    Ok::<_, StoreError>(())
                })
                .unwrap();
        }
        insert.finish().unwrap();
        let mut select = connection.prepare("SELECT n, label, key FROM v ORDER BY n").unwrap();
        let stored: Vec<(i64, Option<String>, Vec<u8>)> =
            select.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect();
        assert_eq!(stored.len(), rows);
        for (n, label, key) in stored {
            let at = n as usize;
            assert_eq!(label, (n % 5 != 0).then(|| labels[at].clone()), "row {n}");
            assert_eq!(key, keys[at], "row {n}");
        }
    }
}
