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
    assert_eq!(emails(&contents), ["ada@contoso.com"]);
    assert_eq!(contents.claims[0].display_name.as_deref(), Some("Lovelace, Ada \"the first\""));
    // A quoted newline is read as part of the field, and then refused: names hold no controls.
    assert_eq!(contents.invalid.len(), 1, "{:?}", contents.invalid);
    assert_eq!((contents.invalid[0].line, contents.invalid[0].field.as_str()), (4, "display_name"));
    assert!(contents.invalid[0].message.contains(r"two\u{d}\u{a}lines"), "{}", contents.invalid[0].message);
    assert_eq!(contents.summary.format, Some(CsvFormat::C7sync));
    assert_eq!(contents.summary.rows, 2);
}

#[test]
fn names_with_control_characters_are_refused_by_line_and_formula_prefixes_are_taken_off() {
    let text = format!(
        "email,oid,display_name\n\
         ada@contoso.com,{A},\"Ada\u{0}\"\n\
         bob@contoso.com,{B},\u{1b}[31mBob\n\
         carol@contoso.com,{C},'=HYPERLINK(\"x\")\n"
    );
    let contents = read_text(&text).unwrap();
    let refused: Vec<(u64, &str)> = contents.invalid.iter().map(|r| (r.line, r.field.as_str())).collect();
    assert_eq!(refused, [(2, "display_name"), (3, "display_name")]);
    assert_eq!(contents.claims.len(), 1);
    assert_eq!(contents.claims[0].display_name.as_deref(), Some("=HYPERLINK(\"x\")"));
}

/// A file that another process writes to while it is read is refused, whichever way it changed.
#[test]
fn a_file_written_while_it_is_read_is_refused() {
    let rows: String =
        (0..20_000u128).map(|n| format!("user{n}@contoso.com,{}\n", uuid::Uuid::from_u128(n + 1))).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("members.csv");
    let read_while = |change: fn(&std::path::Path)| {
        std::fs::write(&path, format!("email,oid\n{rows}")).unwrap();
        let mut options = ReadOptions::for_path(&path, TENANT.parse().unwrap());
        let target = path.clone();
        let mut changed = false;
        options.on_progress = Some(Box::new(move |_| {
            if !std::mem::replace(&mut changed, true) {
                change(&target);
            }
        }));
        read_file(std::fs::File::open(&path).unwrap(), &path, options)
    };
    let appended = read_while(|path| {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        file.write_all(b"late@contoso.com,00000000-0000-0000-0000-00000000ffff\n").unwrap();
    });
    assert!(matches!(appended, Err(CsvError::ChangedWhileRead(_))), "{appended:?}");
    let renamed = read_while(|path| {
        let next = path.with_extension("next");
        std::fs::write(&next, "email,oid\n").unwrap();
        std::fs::rename(&next, path).unwrap();
    });
    assert!(matches!(renamed, Err(CsvError::ChangedWhileRead(why)) if why.contains("another file")), "{renamed:?}");
    let untouched = read_while(|_| {});
    assert_eq!(untouched.unwrap().claims.len(), 20_000);
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

fn options() -> ReadOptions {
    ReadOptions { tenant: TENANT.parse().unwrap(), tab_separated: false, on_progress: None }
}

/// Everything a reading yields, to compare two readings.
fn outcome(read: Result<CsvContents, CsvError>) -> String {
    match read {
        Ok(contents) => format!("{:?}\n{:?}\n{:?}", contents.claims, contents.invalid, contents.summary),
        Err(error) => format!("error: {error}"),
    }
}

/// Split after every newline of a file with quoted newlines, blank lines, CRLF, bad rows and
/// repeats on both sides: whether the split point is a record boundary or inside a quoted
/// field, reading in two halves gives exactly what reading in order gives.
#[test]
fn reading_in_two_halves_gives_what_reading_in_order_gives_wherever_the_split_falls() {
    let other = |n: u128| uuid::Uuid::from_u128(0xabc0 + n);
    let text = format!(
        "email,oid,display_name\r\n\
         ada@contoso.com,{A},\"Lovelace,\nAda\"\r\n\
         \r\n\
         bob@contoso.com,{B},Bob\n\
         \"carol@contoso.com\",{C},\"Carol \"\"C\"\"\"\n\
         not-an-email,{},X\n\
         ada@contoso.com,{A},\"Lovelace,\nAda\"\n\
         dave@contoso.com,{},\"a\n\nb\"\n\
         ,,\n\
         BOB@contoso.com,{},Robert\n\
         erin@contoso.com,{C},Erin\n\
         frank@contoso.com,{}\n",
        other(1),
        other(2),
        other(3),
        other(4)
    );
    let bytes = text.as_bytes();
    let in_order = outcome(read(bytes, options()));
    assert!(in_order.contains("see line"), "the file should have conflicts across lines: {in_order}");
    let mut splits = 0;
    for (at, byte) in bytes.iter().enumerate() {
        if *byte == b'\n' && at + 1 < bytes.len() {
            let split_at = Some(at as u64 + 1);
            let halves = outcome(split::read_split_at(split::Whole::Bytes(bytes), options(), split_at));
            assert_eq!(halves, in_order, "split at byte {}", at + 1);
            splits += 1;
        }
    }
    assert!(splits > 10);
}

/// A file large enough to be read in halves: the same contents as in order, progress reported
/// for both halves, and a line too long in the second half named by its offset in the file.
#[test]
fn a_large_file_is_read_in_halves_with_the_same_result() {
    let rows: String = (0..120_000u128)
        .map(|n| format!("user{n}@contoso.com,{},\"User, {n}\"\n", uuid::Uuid::from_u128(n + 1)))
        .collect();
    let text = format!("email,oid,display_name\n{rows}");
    assert!(text.len() as u64 > 4 << 20, "{} bytes is below the split size", text.len());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("members.csv");
    std::fs::write(&path, &text).unwrap();

    let seen = std::rc::Rc::new(std::cell::Cell::new(0));
    let mut options = ReadOptions::for_path(&path, TENANT.parse().unwrap());
    let counter = seen.clone();
    options.on_progress = Some(Box::new(move |rows| counter.set(rows)));
    let from_file = read_file(std::fs::File::open(&path).unwrap(), &path, options).unwrap();
    assert_eq!(from_file.claims.len(), 120_000);
    assert!(seen.get() > 60_000, "progress counts both halves: {}", seen.get());
    assert_eq!(outcome(Ok(from_file)), outcome(read(text.as_bytes(), self::options())));
    assert_eq!(outcome(read_bytes(text.as_bytes(), self::options())), outcome(read(text.as_bytes(), self::options())));

    let long_at = text.len() * 3 / 4;
    let long_at = long_at + text[long_at..].find('\n').unwrap() + 1;
    let long = format!("{}{}\n{}", &text[..long_at], "z".repeat(2 << 20), &text[long_at..]);
    let error = read_bytes(long.as_bytes(), self::options()).unwrap_err();
    assert!(matches!(error, CsvError::LineTooLong(_)), "{error:?}");
    assert!(error.to_string().contains(&format!("byte {long_at} ")), "{error}");
}
