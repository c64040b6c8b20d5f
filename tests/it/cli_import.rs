//! `c7sync import` and `c7sync sync` (csv sources) through the real binary.

use crate::support::*;

/// Our format: `email,oid,display_name`, members `range`.
fn members_csv(range: std::ops::Range<u128>) -> String {
    let mut text = String::from("email,oid,display_name\n");
    for n in range {
        text.push_str(&format!("dev{n}@contoso.com,{},Developer {n}\n", oid(n)));
    }
    text
}

fn member_emails(project: &Project, teamspace: &str) -> Vec<String> {
    let list = project.run(&["members", "list", "--teamspace", teamspace, "--format", "json"]).expect(0).json();
    let mut emails: Vec<String> =
        list.as_array().unwrap().iter().map(|m| m["email"].as_str().unwrap().to_owned()).collect();
    emails.sort();
    emails
}

fn samples(name: &str) -> String {
    std::fs::read_to_string(format!("{}/samples/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn each_sample_format_imports() {
    let project = Project::standard();
    for (file, expected) in [("developers.csv", 4), ("entra-users-export.csv", 3), ("az-group-members.tsv", 3)] {
        let path = project.write(file, &samples(file));
        let run = project.run(&[
            "import",
            path.to_str().unwrap(),
            "--teamspace",
            "globex",
            "--source",
            "s",
            "--format",
            "json",
        ]);
        let report = run.expect(0).json();
        assert_eq!(report["summary"]["valid"], expected, "{file}: {report}");
        assert_eq!(report["outcome"], "applied");
    }
    let export =
        project.run(&["import", "entra-users-export.csv", "--teamspace", "acme", "--format", "json"]).expect(0).json();
    assert_eq!(export["summary"]["disabled"], 1, "accountEnabled=False is skipped");
    assert_eq!(export["skipped"], 1);
    assert_eq!(export["summary"]["format"], "entra-export");
    assert!(
        member_emails(&project, "acme").contains(&"alan.turing@fabrikam.com".to_owned()),
        "mail beats the guest UPN"
    );
}

#[test]
fn stdin_is_read_with_dash() {
    let project = Project::standard();
    let run = project.run_with_stdin(&["import", "-", "--teamspace", "acme"], Some(members_csv(0..3).as_bytes()));
    assert!(run.expect(0).stdout.contains("added 3"), "{}", run.stdout);
}

#[test]
fn merge_never_removes_and_replace_makes_the_file_the_list() {
    let project = Project::new(&standard_config("100%"));
    project.write("all.csv", &members_csv(0..5));
    project.write("two.csv", &members_csv(0..2));
    project.run(&["import", "all.csv", "--teamspace", "acme"]).expect(0);
    let merge = project.run(&["import", "two.csv", "--teamspace", "acme", "--format", "json"]).expect(0).json();
    assert_eq!((merge["removed"].as_u64(), merge["unchanged"].as_u64()), (Some(0), Some(2)));
    assert_eq!(member_emails(&project, "acme").len(), 5);
    let replace = project.run(&["import", "two.csv", "--teamspace", "acme", "--mode", "replace", "--format", "json"]);
    assert_eq!(replace.expect(0).json()["removed"], 3);
    assert_eq!(member_emails(&project, "acme"), ["dev0@contoso.com", "dev1@contoso.com"]);
}

#[test]
fn invalid_rows_change_nothing_unless_skipped_and_skipping_never_removes() {
    let project = Project::new(&standard_config("100%"));
    project.write("all.csv", &members_csv(0..5));
    project.run(&["import", "all.csv", "--teamspace", "acme", "--mode", "replace"]).expect(0);
    let before = member_emails(&project, "acme");

    let mut bad = members_csv(10..12);
    bad.push_str("broken,not-a-guid,Nobody\n");
    project.write("bad.csv", &bad);
    let rejected = project.run(&["import", "bad.csv", "--teamspace", "acme", "--mode", "replace", "--format", "json"]);
    let report = rejected.expect(4).json();
    assert_eq!(report["outcome"], "failed");
    let invalid = report["invalid"].as_array().unwrap();
    assert_eq!(invalid.len(), 2);
    assert_eq!((invalid[0]["line"].as_u64(), invalid[0]["field"].as_str()), (Some(4), Some("email")));
    assert_eq!(member_emails(&project, "acme"), before, "nothing changed");

    let text = project.run(&["import", "bad.csv", "--teamspace", "acme"]);
    assert!(text.expect(4).stdout.contains("line 4, oid: `not-a-guid` is not a GUID"), "{}", text.stdout);

    let skipped = project.run(&[
        "import",
        "bad.csv",
        "--teamspace",
        "acme",
        "--mode",
        "replace",
        "--skip-invalid",
        "--format",
        "json",
    ]);
    let report = skipped.expect(0).json();
    assert_eq!(
        (report["applied_mode"].as_str(), report["removed"].as_u64(), report["added"].as_u64()),
        (Some("merge"), Some(0), Some(2))
    );
    assert_eq!(member_emails(&project, "acme").len(), 7, "valid rows applied, nobody removed");

    let merge_skip = project.run(&[
        "import",
        "bad.csv",
        "--teamspace",
        "acme",
        "--source",
        "m",
        "--skip-invalid",
        "--format",
        "json",
    ]);
    assert_eq!(merge_skip.expect(0).json()["skipped"], 1);
}

#[test]
fn unusable_files_are_usage_errors() {
    let project = Project::standard();
    project.write("header.csv", "name,address\nx,y\n");
    let header = project.run(&["import", "header.csv", "--teamspace", "acme"]);
    assert!(header.expect(2).stderr.contains("found columns [name, address]"), "{}", header.stderr);
    project.write("twice.csv", &format!("email,oid,OID\nada@contoso.com,{ADA},{}\n", oid(2)));
    let twice = project.run(&["import", "twice.csv", "--teamspace", "acme"]);
    assert!(twice.expect(2).stderr.contains("names column `OID` twice (columns 2 and 3)"), "{}", twice.stderr);
    assert!(member_emails(&project, "acme").is_empty(), "nothing imported");
    project.write("empty.csv", "");
    assert!(project
        .run(&["import", "empty.csv", "--teamspace", "acme"])
        .expect(2)
        .stderr
        .contains("header row is required"));
    std::fs::write(project.path("binary.csv"), [0u8, 159, 146, 150, 255, 10, 1, 2]).unwrap();
    let binary = project.run(&["import", "binary.csv", "--teamspace", "acme"]);
    assert!(binary.expect(2).stderr.contains("not UTF-8 text; is this a CSV file?"), "{}", binary.stderr);
    project.write("header-only.csv", "email,oid,display_name\r\n\r\n");
    let header_only = project.run(&["import", "header-only.csv", "--teamspace", "acme"]);
    assert!(header_only.expect(2).stderr.contains("a header but no rows"), "{}", header_only.stderr);
    // 100 MB with no newline: refused after the first MiB, with a short message.
    let line = vec![b'a'; 100 << 20];
    std::fs::write(project.path("one-line.csv"), &line).unwrap();
    let one_line = project.run(&["import", "one-line.csv", "--teamspace", "acme"]);
    assert!(one_line.expect(2).stderr.contains("longer than 1 MiB"), "{}", one_line.stderr);
    assert!(one_line.stderr.len() < 500, "{}", one_line.stderr);
    // A header line that is long but ends: the message shows the columns cut short.
    std::fs::write(project.path("wide.csv"), format!("{},x\n", "b".repeat(900_000))).unwrap();
    let wide = project.run(&["import", "wide.csv", "--teamspace", "acme"]);
    assert!(wide.expect(2).stderr.contains("(900000 bytes), x"), "{}", &wide.stderr[..wide.stderr.len().min(500)]);
    assert!(wide.stderr.len() < 1000);
    assert!(project.run(&["import", "missing.csv", "--teamspace", "acme"]).expect(2).stderr.contains("cannot open"));
    assert_eq!(project.run(&["runs", "list", "--format", "json"]).json(), serde_json::json!([]));
}

#[test]
fn guards_hold_replace_imports_and_approve_applies_them() {
    let project = Project::standard(); // max_removals 20%
    project.write("all.csv", &members_csv(0..10));
    project.write("few.csv", &members_csv(0..5));
    project.write("empty.csv", "email,oid\n");
    project.run(&["import", "all.csv", "--teamspace", "acme", "--mode", "replace"]).expect(0);

    let empty = project.run(&["import", "empty.csv", "--teamspace", "acme", "--mode", "replace", "--format", "json"]);
    let report = empty.expect(3).json();
    assert!(report["reason"].as_str().unwrap().starts_with("empty-snapshot guard"), "{report}");

    let held = project.run(&["import", "few.csv", "--teamspace", "acme", "--mode", "replace", "--format", "json"]);
    let report = held.expect(3).json();
    assert_eq!(report["outcome"], "aborted");
    assert_eq!(member_emails(&project, "acme").len(), 10, "a held run changes nothing");
    let run_id = report["run_id"].to_string();
    let shown = project.run(&["runs", "show", &run_id]).expect(0).stdout.clone();
    assert!(shown.contains("c7sync runs approve") && shown.contains("remove"), "{shown}");

    let approved = project.run(&["runs", "approve", &run_id, "--format", "json"]).expect(0).json();
    assert_eq!(approved["removed"], 5);
    assert_eq!(member_emails(&project, "acme").len(), 5);
    project.run(&["runs", "approve", &run_id]).expect(1);

    let forced =
        project.run(&["import", "empty.csv", "--teamspace", "acme", "--mode", "replace", "--allow-mass-removal"]);
    forced.expect(0);
    assert!(member_emails(&project, "acme").is_empty());
}

#[test]
fn a_dry_run_changes_nothing_and_a_reimport_is_a_no_op() {
    let project = Project::standard();
    project.write("all.csv", &members_csv(0..20));
    let dry =
        project.run(&["import", "all.csv", "--teamspace", "acme", "--dry-run", "--format", "json"]).expect(0).json();
    assert_eq!((dry["outcome"].as_str(), dry["added"].as_u64()), (Some("dry_run"), Some(20)));
    assert!(member_emails(&project, "acme").is_empty());
    project.run(&["import", "all.csv", "--teamspace", "acme", "--mode", "replace"]).expect(0);
    let again = project
        .run(&["import", "all.csv", "--teamspace", "acme", "--mode", "replace", "--format", "json"])
        .expect(0)
        .json();
    assert_eq!(
        (again["added"].as_u64(), again["removed"].as_u64(), again["updated"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(0), Some(0), Some(20))
    );
    let audit = project.run(&["audit", "--format", "json", "--limit", "1000"]).expect(0).json();
    assert_eq!(audit.as_array().unwrap().len(), 20, "the re-import wrote no audit events");
}

#[test]
fn sync_runs_a_configured_csv_source() {
    let project = Project::standard();
    project.write("hr.csv", &members_csv(0..4));
    let run = project.run(&["sync", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(run.expect(0).stdout.lines().next().unwrap()).unwrap();
    assert_eq!((report["source"].as_str(), report["added"].as_u64()), (Some("csv:hr"), Some(4)));
    std::fs::remove_file(project.path("hr.csv")).unwrap();
    let missing = project.run(&["sync", "--teamspace", "acme", "--source", "hr", "--format", "json"]);
    let report = missing.expect(1).json();
    assert_eq!(report["outcome"], "failed");
    assert!(report["reason"].as_str().unwrap().contains("cannot open"), "{report}");
    assert_eq!(member_emails(&project, "acme").len(), 4, "a failed read removes nobody");
}

#[test]
fn output_into_a_pipe_closed_early_ends_quietly() {
    use std::io::{BufRead, BufReader};
    let project = Project::standard();
    project.write("many.csv", &members_csv(0..3_000));
    project.run(&["import", "many.csv", "--teamspace", "acme"]).expect(0);
    for args in [
        &["members", "list", "--teamspace", "acme"][..],
        &["members", "list", "--teamspace", "acme", "--format", "csv"],
    ] {
        // Like `c7sync members list | head -1`: the reader takes one line and goes away while
        // ~360 KB (more than a pipe holds) is still to be written.
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_c7sync"))
            .args(args)
            .current_dir(project.dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{args:?}: {stderr}");
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
    }
}

#[test]
fn an_import_checkpoints_its_own_writes_and_leaves_no_wal() {
    let project = Project::standard();
    project.write("big.csv", &members_csv(0..60_000));
    project.run(&["import", "big.csv", "--teamspace", "acme", "--mode", "replace"]).expect(0);
    let wal = || std::fs::metadata(project.path("c7sync.db-wal")).map(|m| m.len()).unwrap_or(0);
    // Without closing its connections the import left its whole WAL (16 MB here) behind.
    assert!(wal() < 4 << 20, "the import left a {}-byte WAL for the next command to checkpoint", wal());
    // And the next command, read-only, leaves at most a few pages (SQLite sometimes keeps the
    // file when its last connection closes; it holds nothing left to checkpoint).
    project.run(&["teamspace", "list"]).expect(0);
    assert!(wal() < 1 << 20, "a read-only command left a {}-byte WAL", wal());
}

/// PostgreSQL: a process's first write counts the members the table's statistics already
/// know, so a restarted replica does not analyse a large teamspace again as its own first
/// writes pass 1,024 rows (each ANALYZE holds up the batch it runs in). Runs where the suite
/// runs on PostgreSQL; SQLite keeps no statistics of its own.
#[test]
fn a_new_process_does_not_analyse_members_the_statistics_already_count() {
    if !on_postgres() {
        return;
    }
    let project = Project::standard();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime.block_on(sqlx::PgPool::connect(project.database_url())).unwrap();
    // Manual ANALYZEs of `members` (autovacuum's count apart), once the command's connections
    // are gone: a backend hands in its statistics before it leaves `pg_stat_activity`.
    let analysed = || {
        runtime.block_on(async {
            loop {
                let open: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                     AND application_name = 'c7sync'",
                )
                .fetch_one(&client)
                .await
                .unwrap();
                if open == 0 {
                    break;
                }
                tokio::task::yield_now().await;
            }
            sqlx::query_scalar::<_, i64>("SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'members'")
                .fetch_one(&client)
                .await
                .unwrap()
        })
    };

    project.write("first.csv", &members_csv(0..20_000));
    project.run(&["import", "first.csv", "--teamspace", "acme"]).expect(0);
    assert_eq!(analysed(), 1, "a write of 10,000 rows or more analyses the tables with it");
    project.write("more.csv", &members_csv(20_000..21_100));
    project.run(&["import", "more.csv", "--teamspace", "acme"]).expect(0);
    assert_eq!(analysed(), 1, "a new process writing 1,100 rows analysed 20,000 counted members again");
}
