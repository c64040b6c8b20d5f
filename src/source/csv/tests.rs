//! The reader against each accepted format and each kind of bad row.

use super::*;

const TENANT: &str = "00000000-0000-0000-0000-0000000000aa";
const A: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
const B: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
const C: &str = "16fd2706-8baf-433b-82eb-8c7fada847da";

fn read_text(text: &str) -> Result<CsvContents, CsvError> {
    read(text.as_bytes(), ReadOptions { tenant: TENANT.parse().unwrap(), tab_separated: false, on_progress: None })
}

fn emails(contents: &CsvContents) -> Vec<&str> {
    contents.claims.iter().map(|c| c.email.as_str()).collect()
}

#[test]
fn our_format_with_bom_crlf_and_quoting() {
    let text = format!(
        "\u{feff}Email , OID,display_name\r\n\"ada@contoso.com\",{A},\"Lovelace, Ada \"\"the first\"\"\"\r\n\r\nbob@contoso.com,{B},\"two\r\nlines\"\r\n"
    );
    let contents = read_text(&text).unwrap();
    assert!(contents.invalid.is_empty(), "{:?}", contents.invalid);
    assert_eq!(emails(&contents), ["ada@contoso.com", "bob@contoso.com"]);
    assert_eq!(contents.claims[0].display_name.as_deref(), Some("Lovelace, Ada \"the first\""));
    assert_eq!(contents.claims[1].display_name.as_deref(), Some("two\r\nlines"));
    assert_eq!(contents.summary.format, Some(CsvFormat::C7sync));
    assert_eq!(contents.summary.rows, 2);
}

#[test]
fn the_entra_export_uses_mail_then_upn_and_skips_disabled_accounts() {
    let text = format!(
        "userPrincipalName,displayName,surname,mail,givenName,objectId,userType,jobTitle,accountEnabled\n\
         ada_contoso.com#EXT#@fabrikam.onmicrosoft.com,Ada,Lovelace,ada@contoso.com,Ada,{A},Guest,Engineer,True\n\
         bob@fabrikam.com,Bob,B,,Bob,{B},Member,,true\n\
         carol@fabrikam.com,Carol,C,carol@fabrikam.com,Carol,{C},Member,,False\n"
    );
    let contents = read_text(&text).unwrap();
    assert!(contents.invalid.is_empty(), "{:?}", contents.invalid);
    assert_eq!(emails(&contents), ["ada@contoso.com", "bob@fabrikam.com"]);
    assert_eq!(contents.summary.disabled, 1);
    assert_eq!(contents.summary.format, Some(CsvFormat::EntraExport));
}

#[test]
fn az_cli_tsv_output_with_a_header_is_detected() {
    let text = format!("email\toid\nada@contoso.com\t{A}\nbob@contoso.com\t{B}\n");
    let contents = read_text(&text).unwrap();
    assert_eq!(emails(&contents), ["ada@contoso.com", "bob@contoso.com"]);
    assert_eq!(contents.summary.delimiter, "\\t");
}

#[test]
fn every_kind_of_bad_row_is_reported_by_line_and_field() {
    let other_tenant = "00000000-0000-0000-0000-0000000000ff";
    let text = format!(
        "email,oid,display_name,tenant_id\n\
         not-an-email,{A},Ada,\n\
         bob@contoso.com,not-a-guid,Bob,{TENANT}\n\
         carol@contoso.com,{C},Carol,{other_tenant}\n\
         short@contoso.com,{B}\n\
         ,,,x\n"
    );
    let contents = read_text(&text).unwrap();
    let found: Vec<(u64, &str)> = contents.invalid.iter().map(|i| (i.line, i.field.as_str())).collect();
    assert_eq!(
        found,
        [(2, "email"), (3, "oid"), (4, "tenant_id"), (5, "row"), (6, "email"), (6, "oid"), (6, "tenant_id")]
    );
    assert!(contents.invalid[2].message.contains(other_tenant));
    assert_eq!(contents.summary.invalid_rows, 5);
    assert!(contents.claims.is_empty());
}

#[test]
fn repeats_are_collapsed_and_conflicts_reported_on_both_lines() {
    let text = format!(
        "email,oid\n\
         ada@contoso.com,{A}\n\
         ADA@contoso.com,{A}\n\
         bob@contoso.com,{B}\n\
         robert@contoso.com,{B}\n\
         carol@contoso.com,{C}\n\
         Carol@Contoso.com,7c9e6679-7425-40de-944b-e07fc1f90ae8\n"
    );
    let contents = read_text(&text).unwrap();
    assert_eq!(contents.summary.duplicates, 1);
    assert_eq!(emails(&contents), ["ada@contoso.com"]);
    let found: Vec<(u64, &str)> = contents.invalid.iter().map(|i| (i.line, i.field.as_str())).collect();
    assert_eq!(found, [(4, "oid"), (5, "oid"), (6, "email"), (7, "email")]);
    assert!(contents.invalid[1].message.contains("see line 4"), "{:?}", contents.invalid[1]);
    assert_eq!(contents.summary.invalid_rows, 4);
}

#[test]
fn unusable_files_are_errors_not_rows() {
    assert!(matches!(read_text(""), Err(CsvError::Empty)));
    assert!(matches!(read_text("\n\n"), Err(CsvError::Empty)));
    let header = read_text("name,address\nx,y\n").unwrap_err();
    assert!(header.to_string().contains("found columns [name, address]"), "{header}");
    let binary = read(
        &[0xff, 0xfe, 0x00, 0x01, b'\n'][..],
        ReadOptions { tenant: TENANT.parse().unwrap(), tab_separated: false, on_progress: None },
    );
    assert!(matches!(binary, Err(CsvError::NotText)), "{binary:?}");
}

#[test]
fn a_header_only_file_is_an_empty_listing() {
    let contents = read_text("email,oid\n").unwrap();
    assert!(contents.claims.is_empty() && contents.invalid.is_empty());
}

#[test]
fn invalid_utf8_in_a_row_names_the_column() {
    let mut bytes = format!("email,oid\nada@contoso.com,{A}\n").into_bytes();
    bytes.extend_from_slice(b"b\xffb@contoso.com,");
    bytes.extend_from_slice(B.as_bytes());
    bytes.push(b'\n');
    let contents =
        read(&bytes[..], ReadOptions { tenant: TENANT.parse().unwrap(), tab_separated: false, on_progress: None })
            .unwrap();
    assert_eq!(contents.invalid, [InvalidRow { line: 3, field: "email".into(), message: "is not valid UTF-8".into() }]);
    assert_eq!(contents.claims.len(), 1);
}

#[test]
fn a_quote_left_open_is_reported_on_the_line_where_its_row_starts() {
    // The open quote runs to the end of the file, newlines included (found by fuzzing).
    let text = format!("email,oid\nada@contoso.com,{A}\n\"bob@contoso.com\nmore,{B}\n");
    let contents = read_text(&text).unwrap();
    assert_eq!(emails(&contents), ["ada@contoso.com"]);
    assert!(!contents.invalid.is_empty());
    assert!(contents.invalid.iter().all(|row| row.line == 3), "{:?}", contents.invalid);
}

#[test]
fn a_line_over_a_mebibyte_is_refused_with_a_short_message() {
    let text = format!("email,oid\n{}\n", "z".repeat(2 << 20));
    let error = read_text(&text).unwrap_err();
    assert!(matches!(error, CsvError::LineTooLong(_)), "{error:?}");
    assert!(error.to_string().contains("byte 10"), "{error}");
}
