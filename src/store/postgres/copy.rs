//! Rows streamed with `COPY … FROM STDIN (FORMAT binary)`, the way a large plan's new rows reach
//! PostgreSQL: the server reads them as they arrive and writes them without planning or
//! evaluating a statement per row (BENCHMARKS.md, PostgreSQL: the first 1M import).
//!
//! The binary format (PostgreSQL docs, "COPY", "Binary Format"): a fixed header, then per row a
//! 16-bit field count and per field a 32-bit length (-1 for NULL) and the value in the type's
//! binary form — big-endian for `int8`, the bytes themselves for `bytea` and UTF-8 `text` —
//! then a 16-bit -1.

use sqlx::{Postgres, Transaction};

use crate::store::StoreError;

/// `PGCOPY\n\377\r\n\0`, no flags, no header extension.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Rows for one `COPY` into one table, in its binary format.
pub(super) struct CopyRows {
    data: Vec<u8>,
    columns: i16,
    rows: usize,
    /// Fields written to the current row, so a row of the wrong width is caught in tests.
    fields: i16,
}

impl CopyRows {
    /// Rows of `columns` fields each, in the order the `COPY` statement names its columns.
    pub(super) fn new(columns: i16) -> CopyRows {
        CopyRows { data: HEADER.to_vec(), columns, rows: 0, fields: columns }
    }

    /// Starts the next row; its fields follow.
    pub(super) fn row(&mut self) -> &mut CopyRows {
        debug_assert_eq!(self.fields, self.columns, "the previous row has the wrong number of fields");
        self.data.extend_from_slice(&self.columns.to_be_bytes());
        self.rows += 1;
        self.fields = 0;
        self
    }

    pub(super) fn int8(&mut self, value: i64) -> &mut CopyRows {
        self.field(Some(&value.to_be_bytes()))
    }

    pub(super) fn bytes(&mut self, value: &[u8]) -> &mut CopyRows {
        self.field(Some(value))
    }

    pub(super) fn text(&mut self, value: &str) -> &mut CopyRows {
        self.field(Some(value.as_bytes()))
    }

    pub(super) fn optional_text(&mut self, value: Option<&str>) -> &mut CopyRows {
        self.field(value.map(str::as_bytes))
    }

    pub(super) fn optional_int8(&mut self, value: Option<i64>) -> &mut CopyRows {
        match value {
            Some(value) => self.int8(value),
            None => self.field(None),
        }
    }

    fn field(&mut self, value: Option<&[u8]>) -> &mut CopyRows {
        self.fields += 1;
        match value {
            // Values are bounded far below 2 GiB by validation; a longer one would get a wrong
            // length here, and the server would refuse the malformed stream, not store it.
            Some(value) => {
                let length = i32::try_from(value.len()).unwrap_or(i32::MAX);
                self.data.extend_from_slice(&length.to_be_bytes());
                self.data.extend_from_slice(value);
            }
            None => self.data.extend_from_slice(&(-1i32).to_be_bytes()),
        }
        self
    }

    /// The whole stream: header, rows, trailer.
    fn finish(mut self) -> Vec<u8> {
        debug_assert_eq!(self.fields, self.columns, "the last row has the wrong number of fields");
        self.data.extend_from_slice(&(-1i16).to_be_bytes());
        self.data
    }

    /// Streams the rows with `statement` (`COPY table (columns) FROM STDIN (FORMAT binary)`) in
    /// the transaction; nothing when there are none.
    pub(super) async fn copy_into(
        self,
        tx: &mut Transaction<'static, Postgres>,
        statement: &'static str,
    ) -> Result<(), StoreError> {
        if self.rows == 0 {
            return Ok(());
        }
        let mut copy = (**tx).copy_in_raw(statement).await?;
        copy.send(self.finish()).await?;
        copy.finish().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::CopyRows;

    #[test]
    fn rows_are_encoded_in_the_binary_copy_format() {
        let mut rows = CopyRows::new(3);
        rows.row().int8(-2).text("é").optional_text(None);
        rows.row().bytes(&[0xff]).optional_int8(Some(1)).optional_int8(None);
        let mut expected = b"PGCOPY\n\xff\r\n\0".to_vec();
        expected.extend([0, 0, 0, 0, 0, 0, 0, 0]); // flags, header extension length
        expected.extend([0, 3]); // three fields
        expected.extend([0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);
        expected.extend([0, 0, 0, 2, 0xc3, 0xa9]);
        expected.extend([0xff, 0xff, 0xff, 0xff]); // NULL
        expected.extend([0, 3]);
        expected.extend([0, 0, 0, 1, 0xff]);
        expected.extend([0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]);
        expected.extend([0xff, 0xff, 0xff, 0xff]);
        expected.extend([0xff, 0xff]); // trailer
        assert_eq!(rows.finish(), expected);
    }
}
