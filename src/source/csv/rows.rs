//! Row checks: each row on its own (GUIDs, addresses, tenant, `accountEnabled`), then across
//! rows (the same oid or email twice with different values). Problems are collected, never fatal.

use serde::Serialize;

use crate::domain::{fingerprint, DisplayName, Email, Oid, TenantId};

use crate::plan::DesiredClaim;

use super::columns::Columns;
use super::formula;

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

/// What one row turned out to be.
pub enum RowVerdict {
    /// Usable.
    Valid(DesiredClaim),
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
        Some((index, name)) => {
            formula::restore(fields[*index]).parse::<Email>().map_err(|e| problem(name, e.to_string())).ok()
        }
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
    let display_name = match columns.display_name.map(|i| DisplayName::optional(Some(formula::restore(fields[i])))) {
        None => None,
        Some(Ok(name)) => name,
        Some(Err(e)) => {
            problem("display_name", e.to_string());
            None
        }
    };
    match (oid, email) {
        (Some(oid), Some(email)) if problems.is_empty() => RowVerdict::Valid(DesiredClaim { oid, email, display_name }),
        _ => RowVerdict::Invalid(problems),
    }
}

/// The outcome of the cross-row checks.
pub struct Deduplicated {
    /// Exact repeats collapsed.
    pub duplicates: u64,
    /// Rows dropped because they conflict with another row.
    pub conflicting: u64,
}

/// Collapses exact repeats; reports every row of an oid (or email) that appears with
/// different values, since no row of such a set can be trusted over the others. Works by
/// sorting fixed-width keys (16 or 8 bytes and a row index) rather than hashing: a million
/// rows need 48 MB of keys instead of two hash maps of 100 MB. `claims` and `lines` are
/// filtered in place.
pub fn deduplicate(
    claims: &mut Vec<DesiredClaim>,
    lines: &mut Vec<u32>,
    invalid: &mut Vec<InvalidRow>,
) -> Deduplicated {
    let mut keep = vec![true; claims.len()];
    let mut duplicates = 0;
    let report = |invalid: &mut Vec<InvalidRow>, field: &str, what: &str, row: usize, other: usize| {
        invalid.push(InvalidRow {
            line: lines[row].into(),
            field: field.to_owned(),
            message: format!("{what} (see line {})", lines[other]),
        });
    };

    // (oid, row) keys sorted, so repeats of an oid end up adjacent, first row first. The oid is
    // split into two u64 halves so the keys sort without chasing pointers into `claims`.
    let mut by_oid: Vec<(u64, u64, u32)> = claims
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let bytes = c.oid.to_bytes();
            let (high, low) = bytes.split_at(8);
            let half = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or_default());
            (half(high), half(low), i as u32)
        })
        .collect();
    by_oid.sort_unstable();
    let by_oid: Vec<u32> = by_oid.into_iter().map(|(_, _, i)| i).collect();
    for run in by_oid.chunk_by(|a, b| claims[*a as usize].oid == claims[*b as usize].oid).filter(|run| run.len() > 1) {
        let first = run[0] as usize;
        let all_equal = run[1..].iter().all(|i| claims[*i as usize] == claims[first]);
        for index in &run[1..] {
            keep[*index as usize] = false;
        }
        if all_equal {
            duplicates += (run.len() - 1) as u64;
        } else {
            let what = format!("{} appears with different values", claims[first].oid);
            for (position, index) in run.iter().enumerate() {
                let other = if position == 0 { run[1] } else { run[0] };
                keep[*index as usize] = false;
                report(invalid, "oid", &what, *index as usize, other as usize);
            }
        }
    }
    drop(by_oid);

    // Among the rows left (one per oid), the same email (any case) twice means two oids.
    let mut by_email: Vec<(i64, u32)> = claims
        .iter()
        .enumerate()
        .filter(|(i, _)| keep[*i])
        .map(|(i, c)| (fingerprint::email(&c.email), i as u32))
        .collect();
    by_email.sort_unstable();
    for run in by_email.chunk_by(|a, b| a.0 == b.0).filter(|run| run.len() > 1) {
        let first = run[0].1 as usize;
        // A fingerprint collision between different addresses (2^-64) is not a conflict.
        if run.iter().any(|(_, i)| claims[*i as usize].email != claims[first].email) {
            continue;
        }
        let what = format!("{} belongs to two different oids", claims[first].email);
        for (position, (_, index)) in run.iter().enumerate() {
            let other = if position == 0 { run[1].1 } else { run[0].1 };
            keep[*index as usize] = false;
            report(invalid, "email", &what, *index as usize, other as usize);
        }
    }
    drop(by_email);

    let dropped = keep.iter().filter(|k| !**k).count() as u64;
    let mut index = 0;
    claims.retain(|_| {
        index += 1;
        keep[index - 1]
    });
    let mut index = 0;
    lines.retain(|_| {
        index += 1;
        keep[index - 1]
    });
    Deduplicated { duplicates, conflicting: dropped - duplicates }
}
