//! Multi-row statements for bulk writes: one statement per chunk of rows instead of one per
//! row, which is what makes a million-row apply run at SQLite's speed rather than sqlx's.

/// Rows per bulk statement. SQLite allows 32,766 parameters; larger chunks gain nothing.
pub const CHUNK_ROWS: usize = 512;

/// Repeats `row` once per row, numbering each `#` in it as the next parameter, starting after
/// the `constants` parameters (`$1`..`$constants`) that every row may reuse literally.
///
/// `values_list(2, "($1, #, #)", 2)` → `($1, $2, $3), ($1, $4, $5)` when `constants` is 1.
pub fn values_list(constants: usize, row: &str, rows: usize) -> String {
    let mut sql = String::with_capacity(rows * (row.len() + 8));
    let mut next = constants + 1;
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        for ch in row.chars() {
            if ch == '#' {
                sql.push('$');
                sql.push_str(&next.to_string());
                next += 1;
            } else {
                sql.push(ch);
            }
        }
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_row_parameters_after_the_constants() {
        assert_eq!(values_list(1, "($1, #, #)", 2), "($1, $2, $3), ($1, $4, $5)");
        assert_eq!(values_list(0, "#", 3), "$1, $2, $3");
    }
}
