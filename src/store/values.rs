//! Multi-row statements through sqlx (SCIM group membership, loading by oid lists): one
//! statement per chunk of rows instead of one per row. A plan's own rows are written by
//! `bulk.rs`, which binds them without sqlx's per-argument copies.

/// Rows per bulk statement. SQLite allows 32,766 parameters; larger chunks gain nothing.
pub const LIST_CHUNK_ROWS: usize = 512;

/// Repeats `row` (a tuple of anonymous `?` parameters) once per row, comma-separated.
///
/// Bulk statements use only anonymous `?` parameters: sqlx asks SQLite for every parameter's
/// name while binding, and for named ones (`$1`) SQLite finds it by scanning the statement's
/// whole parameter list, which makes binding quadratic in the chunk size (measured: 61% of a
/// 200,000-row import). Per-run constants are therefore written into the SQL as integer
/// literals by the caller; they are our own row ids and timestamps, never input text.
///
/// `values_list("(7, ?, ?)", 2)` → `(7, ?, ?), (7, ?, ?)`.
pub fn values_list(row: &str, rows: usize) -> String {
    let mut sql = String::with_capacity(rows * (row.len() + 2));
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(row);
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_the_row_tuple() {
        assert_eq!(values_list("(7, ?, ?)", 2), "(7, ?, ?), (7, ?, ?)");
        assert_eq!(values_list("?", 3), "?, ?, ?");
    }
}
