//! A prepared statement on SQLite's C API that reads its text and blob values in place.
//!
//! rusqlite binds every text and blob as `SQLITE_TRANSIENT`: SQLite allocates a copy of each
//! value before the statement runs and frees it when the parameter is bound again. Binding a
//! million members' emails, names and oids that way was an eighth of a first import's time
//! (allocation, copy, free; BENCHMARKS.md). Here they are bound `SQLITE_STATIC`, which SQLite
//! reads where they are, so they must stay put for as long as the statement may read them: the
//! statement borrows them for `'v`, and the borrow checker holds the values still until it is
//! finalized.

#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, CStr};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use rusqlite::{ffi, Connection};

/// A prepared statement on `'c`'s connection, bound to values borrowed for `'v`.
pub(super) struct InPlaceStatement<'c, 'v> {
    raw: NonNull<ffi::sqlite3_stmt>,
    connection: *mut ffi::sqlite3,
    _connection: PhantomData<&'c Connection>,
    _values: PhantomData<&'v [u8]>,
}

impl<'c> InPlaceStatement<'c, '_> {
    pub(super) fn prepare(connection: &'c Connection, sql: &str) -> rusqlite::Result<Self> {
        let length = c_int::try_from(sql.len()).map_err(|_| rusqlite::Error::InvalidQuery)?;
        // SAFETY: the handle is open for `'c`, which this statement cannot outlive.
        let handle = unsafe { connection.handle() };
        let mut raw = ptr::null_mut();
        // SAFETY: `sql` is valid for `length` bytes; SQLite writes a statement or null to `raw`.
        let code = unsafe {
            ffi::sqlite3_prepare_v3(
                handle,
                sql.as_ptr().cast::<c_char>(),
                length,
                // Stepped thousands of times: SQLite keeps it out of its lookaside memory.
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut raw,
                ptr::null_mut(),
            )
        };
        if code != ffi::SQLITE_OK {
            return Err(failure(handle, code));
        }
        let raw = NonNull::new(raw).ok_or(rusqlite::Error::InvalidQuery)?;
        Ok(InPlaceStatement { raw, connection: handle, _connection: PhantomData, _values: PhantomData })
    }
}

impl<'v> InPlaceStatement<'_, 'v> {
    /// Runs the statement with the values bound, which stay bound for the next run.
    pub(super) fn execute(&mut self) -> rusqlite::Result<()> {
        // SAFETY: `raw` is a live statement whose bound values outlive it ('v).
        let code = unsafe { ffi::sqlite3_step(self.raw.as_ptr()) };
        let outcome = match code {
            ffi::SQLITE_DONE => Ok(()),
            ffi::SQLITE_ROW => Err(rusqlite::Error::ExecuteReturnedResults),
            _ => Err(failure(self.connection, code)),
        };
        // SAFETY: as above; resetting keeps the bindings. Its code repeats the step's.
        unsafe { ffi::sqlite3_reset(self.raw.as_ptr()) };
        outcome
    }

    fn bound(&self, code: c_int) -> rusqlite::Result<()> {
        match code {
            ffi::SQLITE_OK => Ok(()),
            _ => Err(failure(self.connection, code)),
        }
    }
}

/// A value a statement can read in place for `'v`.
pub(super) trait Value<'v> {
    fn bind(self, statement: &mut InPlaceStatement<'_, 'v>, index: c_int) -> rusqlite::Result<()>;
}

impl<'v> Value<'v> for i64 {
    fn bind(self, statement: &mut InPlaceStatement<'_, 'v>, index: c_int) -> rusqlite::Result<()> {
        // SAFETY: a live statement; SQLite checks the index.
        statement.bound(unsafe { ffi::sqlite3_bind_int64(statement.raw.as_ptr(), index, self) })
    }
}

impl<'v> Value<'v> for &'v str {
    fn bind(self, statement: &mut InPlaceStatement<'_, 'v>, index: c_int) -> rusqlite::Result<()> {
        let length = c_int::try_from(self.len()).map_err(|_| rusqlite::Error::InvalidQuery)?;
        // SAFETY: the text is valid UTF-8 for `length` bytes and outlives the statement ('v), so
        // SQLite may read it in place (SQLITE_STATIC) until the parameter is bound again.
        let code = unsafe {
            ffi::sqlite3_bind_text(
                statement.raw.as_ptr(),
                index,
                self.as_ptr().cast::<c_char>(),
                length,
                ffi::SQLITE_STATIC(),
            )
        };
        statement.bound(code)
    }
}

impl<'v> Value<'v> for &'v [u8] {
    fn bind(self, statement: &mut InPlaceStatement<'_, 'v>, index: c_int) -> rusqlite::Result<()> {
        let length = c_int::try_from(self.len()).map_err(|_| rusqlite::Error::InvalidQuery)?;
        // SAFETY: as for text: `length` bytes that outlive the statement.
        let code = unsafe {
            ffi::sqlite3_bind_blob(statement.raw.as_ptr(), index, self.as_ptr().cast(), length, ffi::SQLITE_STATIC())
        };
        statement.bound(code)
    }
}

impl<'v, T: Value<'v>> Value<'v> for Option<T> {
    fn bind(self, statement: &mut InPlaceStatement<'_, 'v>, index: c_int) -> rusqlite::Result<()> {
        match self {
            Some(value) => value.bind(statement, index),
            // SAFETY: a live statement; SQLite checks the index.
            None => statement.bound(unsafe { ffi::sqlite3_bind_null(statement.raw.as_ptr(), index) }),
        }
    }
}

impl Drop for InPlaceStatement<'_, '_> {
    fn drop(&mut self) {
        // SAFETY: finalized once, here; nothing reads the bound values after this.
        unsafe { ffi::sqlite3_finalize(self.raw.as_ptr()) };
    }
}

/// The connection's error for `code`, with SQLite's message, as rusqlite reports it.
fn failure(connection: *mut ffi::sqlite3, code: c_int) -> rusqlite::Error {
    // SAFETY: an open connection; the message is copied before any other call on it.
    let (extended, message) = unsafe {
        let message = ffi::sqlite3_errmsg(connection);
        let message = (!message.is_null()).then(|| CStr::from_ptr(message).to_string_lossy().into_owned());
        (ffi::sqlite3_extended_errcode(connection), message)
    };
    // After a failed step the connection's code is the step's; otherwise it is the call's own.
    let code = if extended & 0xff == code & 0xff { extended } else { code };
    rusqlite::Error::SqliteFailure(ffi::Error::new(code), message)
}
