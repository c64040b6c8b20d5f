//! Which column is which: maps a header row to the fields we need, recognising our format,
//! the Entra admin centre's "Download users" export, and `az ad group member list` output.

/// The format a header was recognised as (reported with every import).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CsvFormat {
    /// `email`, `oid`, optional `display_name`, `tenant_id` (also `az … --query "[].{email:mail, oid:id}"`).
    C7sync,
    /// Entra admin centre "Download users": `userPrincipalName`, `mail`, `objectId`/`id`, ….
    EntraExport,
}

/// Positions of the columns we read; everything else in the file is ignored.
#[derive(Debug, Clone)]
pub struct Columns {
    /// Detected format.
    pub format: CsvFormat,
    /// Number of fields in the header.
    pub width: usize,
    /// The oid column (index, name as written).
    pub oid: (usize, String),
    /// Email columns in order of preference: the first non-empty one is the email.
    pub email: Vec<(usize, String)>,
    /// Display name.
    pub display_name: Option<usize>,
    /// Tenant id (must match the teamspace when present).
    pub tenant_id: Option<(usize, String)>,
    /// `accountEnabled`: rows with `false` are skipped.
    pub account_enabled: Option<(usize, String)>,
}

/// The header does not name the columns we need, or names one twice (exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The columns we need are not there.
    #[error(
        "unrecognised CSV header: found columns [{}]; expected `email` and `oid` (optional `display_name`, \
         `tenant_id`), or an Entra \"Download users\" export with `userPrincipalName` or `mail`, and `objectId` or `id`",
        shown(found)
    )]
    Unrecognised {
        /// The columns found, as written.
        found: Vec<String>,
    },
    /// A column we read appears twice: which one is meant cannot be guessed.
    #[error("CSV header names column `{name}` twice (columns {first} and {second}); remove one of them")]
    Duplicate {
        /// The second spelling, as written.
        name: String,
        /// 1-based positions.
        first: usize,
        /// 1-based positions.
        second: usize,
    },
}

/// Every column [`resolve`] reads, normalised.
const READ: [&str; 9] =
    ["email", "oid", "objectid", "id", "mail", "userprincipalname", "displayname", "tenantid", "accountenabled"];

/// The found columns as the error shows them: a header that is really a binary file or one
/// giant line must not become a giant message.
fn shown(found: &[String]) -> String {
    const COLUMNS: usize = 12;
    const CHARS: usize = 40;
    let mut text: Vec<String> = found
        .iter()
        .take(COLUMNS)
        .map(|c| match c.char_indices().nth(CHARS) {
            Some((cut, _)) => format!("{}… ({} bytes)", &c[..cut], c.len()),
            None => c.clone(),
        })
        .collect();
    if found.len() > COLUMNS {
        text.push(format!("and {} more", found.len() - COLUMNS));
    }
    text.join(", ")
}

/// Header names compare case-insensitively, ignoring spaces, `_` and `-`: `User principal name`,
/// `userPrincipalName` and `user_principal_name` are one column.
fn normalise(name: &str) -> String {
    name.chars().filter(|c| !matches!(c, ' ' | '_' | '-')).flat_map(char::to_lowercase).collect()
}

/// Maps a header row (already trimmed) to column positions.
pub fn resolve(header: &[String]) -> Result<Columns, HeaderError> {
    let names: Vec<String> = header.iter().map(|h| normalise(h)).collect();
    for (second, name) in names.iter().enumerate().filter(|(_, n)| READ.contains(&n.as_str())) {
        if let Some(first) = names[..second].iter().position(|n| n == name) {
            return Err(HeaderError::Duplicate { name: header[second].clone(), first: first + 1, second: second + 1 });
        }
    }
    let find = |wanted: &str| names.iter().position(|n| n == wanted).map(|i| (i, header[i].clone()));
    let missing = || HeaderError::Unrecognised { found: header.to_vec() };

    let email = find("email");
    let oid = find("oid");
    let (format, oid, email) = match (email, oid) {
        (Some(email), Some(oid)) => (CsvFormat::C7sync, oid, vec![email]),
        _ => {
            let oid = find("objectid").or_else(|| find("id")).ok_or_else(missing)?;
            let email: Vec<_> = [find("mail"), find("userprincipalname")].into_iter().flatten().collect();
            if email.is_empty() {
                return Err(missing());
            }
            (CsvFormat::EntraExport, oid, email)
        }
    };
    Ok(Columns {
        format,
        width: header.len(),
        oid,
        email,
        display_name: find("displayname").map(|(i, _)| i),
        tenant_id: find("tenantid"),
        account_enabled: find("accountenabled"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn recognises_our_format_in_any_case() {
        let columns = resolve(&header(&["Display_Name", "EMAIL", "oid", "Tenant_ID"])).unwrap();
        assert_eq!(columns.format, CsvFormat::C7sync);
        assert_eq!(columns.oid.0, 2);
        assert_eq!(columns.email[0].0, 1);
        assert_eq!(columns.display_name, Some(0));
        assert_eq!(columns.tenant_id.map(|t| t.0), Some(3));
    }

    #[test]
    fn recognises_the_entra_export_with_mail_before_upn() {
        let columns = resolve(&header(&[
            "userPrincipalName",
            "displayName",
            "surname",
            "mail",
            "objectId",
            "userType",
            "accountEnabled",
        ]))
        .unwrap();
        assert_eq!(columns.format, CsvFormat::EntraExport);
        assert_eq!(columns.oid.0, 4);
        assert_eq!(columns.email.iter().map(|e| e.0).collect::<Vec<_>>(), [3, 0]);
        assert_eq!(columns.account_enabled.map(|a| a.0), Some(6));
        let labelled = resolve(&header(&["User principal name", "Object Id", "Display name"])).unwrap();
        assert_eq!(labelled.oid.0, 1);
    }

    #[test]
    fn a_column_read_twice_is_refused_by_name() {
        let error = resolve(&header(&["email", "oid", "OID"])).unwrap_err();
        assert_eq!(error.to_string(), "CSV header names column `OID` twice (columns 2 and 3); remove one of them");
        let spelled = resolve(&header(&["Object Id", "mail", "objectId"])).unwrap_err();
        assert!(matches!(spelled, HeaderError::Duplicate { first: 1, second: 3, .. }), "{spelled}");
        // Columns c7sync does not read may repeat (exports carry such columns).
        assert!(resolve(&header(&["email", "oid", "notes", "Notes"])).is_ok());
    }

    #[test]
    fn an_unknown_header_names_what_it_found() {
        let error = resolve(&header(&["name", "address"])).unwrap_err();
        assert!(error.to_string().contains("found columns [name, address]"), "{error}");
    }
}
