//! Spreadsheet formula injection (OWASP "CSV injection"): a cell that starts with `=`, `+`,
//! `-`, `@`, a tab or a carriage return is run as a formula when the export is opened in a
//! spreadsheet. Exports prefix such a cell with `'`, which spreadsheets show as text; imports
//! take that prefix off again, so an export still re-imports to the same members.

use std::borrow::Cow;

fn starts_like_a_formula(text: &str) -> bool {
    text.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

/// `text` as a cell that no spreadsheet evaluates.
pub fn neutralise(text: &str) -> Cow<'_, str> {
    if starts_like_a_formula(text) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// A cell as written by [`neutralise`], back to its value.
pub fn restore(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if starts_like_a_formula(rest) => rest,
        _ => cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_round_trip_and_others_are_untouched() {
        for formula in ["=cmd|' /C calc'!A0", "+SUM(A1:A9)", "-2+3", "@HYPERLINK(\"x\")", "\tx"] {
            let cell = neutralise(formula);
            assert!(cell.starts_with('\''), "{cell}");
            assert_eq!(restore(&cell), formula);
        }
        for plain in ["Ada Lovelace", "ada@contoso.com", "'quoted'", "O'Brien"] {
            assert_eq!(neutralise(plain), plain);
            assert_eq!(restore(plain), plain);
        }
    }
}
