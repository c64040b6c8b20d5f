//! Row checks: each row on its own (GUIDs, addresses, tenant, `accountEnabled`), then across
//! rows (the same oid or email twice with different values). Problems are collected, never fatal.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use serde::Serialize;

use crate::domain::{Email, Oid, TenantId};
use crate::plan::DesiredClaim;

use super::columns::Columns;

/// One problem with one row, by its line in the file (the header is line 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidRow {
    /// Line where the row starts.
    pub line: u64,
    /// The column (as written in the header), or `row` for the row as a whole.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// A row that passed its own checks.
#[derive(Debug)]
pub struct ParsedRow {
    /// Line where the row starts.
    pub line: u64,
    /// What it says.
    pub claim: DesiredClaim,
}

/// What one row turned out to be.
pub enum RowVerdict {
    /// Usable.
    Valid(ParsedRow),
    /// `accountEnabled` is false: skipped, counted.
    Disabled,
    /// One or more problems.
    Invalid(Vec<InvalidRow>),
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// Checks one row; `fields` are already trimmed UTF-8.
pub fn check_row(line: u64, fields: &[&str], columns: &Columns, tenant: TenantId) -> RowVerdict {
    let mut problems = Vec::new();
    let mut problem = |field: &str, message: String| {
        problems.push(InvalidRow { line, field: field.to_owned(), message });
    };
    if fields.len() != columns.width {
        problem("row", format!("has {} fields, the header has {}", fields.len(), columns.width));
        return RowVerdict::Invalid(problems);
    }
    if let Some((index, name)) = &columns.account_enabled {
        match parse_bool(fields[*index]) {
            Some(false) => return RowVerdict::Disabled,
            Some(true) => {}
            None if fields[*index].is_empty() => {}
            None => problem(name, format!("`{}` is not true or false", fields[*index])),
        }
    }
    let (oid_index, oid_name) = &columns.oid;
    let oid = match fields[*oid_index] {
        "" => {
            problem(oid_name, "is empty".to_owned());
            None
        }
        text => text.parse::<Oid>().map_err(|e| problem(oid_name, e.to_string())).ok(),
    };
    let email = match columns.email.iter().find(|(i, _)| !fields[*i].is_empty()) {
        Some((index, name)) => fields[*index].parse::<Email>().map_err(|e| problem(name, e.to_string())).ok(),
        None => {
            let names: Vec<_> = columns.email.iter().map(|(_, n)| n.as_str()).collect();
            problem(&names.join("/"), "is empty".to_owned());
            None
        }
    };
    if let Some((index, name)) = &columns.tenant_id {
        let text = fields[*index];
        if !text.is_empty() {
            match text.parse::<TenantId>() {
                Ok(row_tenant) if row_tenant == tenant => {}
                Ok(row_tenant) => {
                    problem(name, format!("is tenant {row_tenant}, but the teamspace's tenant is {tenant}"))
                }
                Err(e) => problem(name, e.to_string()),
            }
        }
    }
    match (oid, email) {
        (Some(oid), Some(email)) if problems.is_empty() => {
            let name = columns.display_name.map(|i| fields[i]).filter(|n| !n.is_empty());
            RowVerdict::Valid(ParsedRow {
                line,
                claim: DesiredClaim { oid, email, display_name: name.map(Into::into) },
            })
        }
        _ => RowVerdict::Invalid(problems),
    }
}

/// An email as a map key that ignores ASCII case, without allocating a lower-case copy.
struct Caseless<'a>(&'a str);

impl Hash for Caseless<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for byte in self.0.bytes() {
            state.write_u8(byte.to_ascii_lowercase());
        }
    }
}

impl PartialEq for Caseless<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(other.0)
    }
}

impl Eq for Caseless<'_> {}

/// The outcome of the cross-row checks.
pub struct Deduplicated {
    /// One claim per oid, in file order.
    pub claims: Vec<DesiredClaim>,
    /// Exact repeats collapsed.
    pub duplicates: u64,
    /// Rows dropped because they conflict with another row.
    pub conflicting: u64,
}

/// Collapses exact repeats; reports every row of an oid (or email) that appears with
/// different values, since no row of such a set can be trusted over the others.
pub fn deduplicate(rows: Vec<ParsedRow>, invalid: &mut Vec<InvalidRow>) -> Deduplicated {
    let mut keep = vec![true; rows.len()];
    let mut duplicates = 0;
    {
        // foldhash: these maps hold a million keys in a large import, and SipHash's DoS
        // resistance buys nothing against a file the operator chose to import.
        let hasher = foldhash::fast::RandomState::default;
        let mut by_oid: HashMap<Oid, usize, _> = HashMap::with_capacity_and_hasher(rows.len(), hasher());
        let mut by_email: HashMap<Caseless<'_>, usize, _> = HashMap::with_capacity_and_hasher(rows.len(), hasher());
        for (index, row) in rows.iter().enumerate() {
            let claim = &row.claim;
            if let Some(&first) = by_oid.get(&claim.oid) {
                let earlier = &rows[first];
                keep[index] = false;
                if earlier.claim == *claim {
                    duplicates += 1;
                } else {
                    keep[first] = false;
                    invalid.push(conflict(
                        row,
                        earlier,
                        "oid",
                        &format!("{} appears with different values", claim.oid),
                    ));
                    invalid.push(conflict(
                        earlier,
                        row,
                        "oid",
                        &format!("{} appears with different values", claim.oid),
                    ));
                }
                continue;
            }
            by_oid.insert(claim.oid, index);
            if let Some(&first) = by_email.get(&Caseless(claim.email.as_str())) {
                let earlier = &rows[first];
                keep[index] = false;
                keep[first] = false;
                let what = format!("{} belongs to two different oids", claim.email);
                invalid.push(conflict(row, earlier, "email", &what));
                invalid.push(conflict(earlier, row, "email", &what));
                continue;
            }
            by_email.insert(Caseless(claim.email.as_str()), index);
        }
    }
    let dropped = keep.iter().filter(|k| !**k).count() as u64;
    let claims = rows.into_iter().zip(keep).filter(|(_, keep)| *keep).map(|(row, _)| row.claim).collect();
    Deduplicated { claims, duplicates, conflicting: dropped - duplicates }
}

fn conflict(row: &ParsedRow, other: &ParsedRow, field: &str, what: &str) -> InvalidRow {
    InvalidRow { line: row.line, field: field.to_owned(), message: format!("{what} (see line {})", other.line) }
}
