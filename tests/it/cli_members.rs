//! The manual source and the history commands through the real binary.

use crate::support::*;

#[test]
fn add_list_update_remove_through_the_cli() {
    let project = Project::standard();
    project
        .run(&[
            "members",
            "add",
            "--teamspace",
            "acme",
            "--oid",
            &ADA.to_uppercase(),
            "--email",
            "ada@contoso.com",
            "--name",
            "Ada",
        ])
        .expect(0);

    let list = project.run(&["members", "list", "--teamspace", "acme", "--format", "json"]);
    let members = list.expect(0).json();
    assert_eq!(members.as_array().unwrap().len(), 1);
    let ada = &members[0];
    assert_eq!(ada["oid"], ADA, "oids are stored lower-case canonical");
    assert_eq!(ada["tenant_id"], TENANT);
    assert_eq!(ada["email"], "ada@contoso.com");
    assert_eq!(ada["display_name"], "Ada");
    assert_eq!(ada["role"], "developer");
    assert_eq!(ada["sources"], serde_json::json!(["manual"]));

    let update =
        project.run(&["members", "add", "--teamspace", "acme", "--oid", ADA, "--email", "ada.lovelace@contoso.com"]);
    assert!(update.expect(0).stdout.contains("updated"), "{}", update.stdout);
    let csv = project.run(&["members", "list", "--teamspace", "acme", "--format", "csv"]);
    assert_eq!(csv.expect(0).stdout.lines().next(), Some("tenant_id,oid,email,display_name,role,sources"));
    assert!(csv.stdout.contains("ada.lovelace@contoso.com,Ada,developer,manual"), "{}", csv.stdout);
    assert!(project
        .run(&["members", "list", "--teamspace", "acme"])
        .expect(0)
        .stdout
        .contains("ada.lovelace@contoso.com"));

    project.run(&["members", "remove", "--teamspace", "acme", "--oid", ADA]).expect(0);
    assert_eq!(
        project.run(&["members", "list", "--teamspace", "acme", "--format", "json"]).json(),
        serde_json::json!([])
    );

    let audit = project.run(&["audit", "--teamspace", "acme", "--oid", ADA, "--format", "json"]).expect(0).json();
    let actions: Vec<_> = audit.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect();
    assert_eq!(actions, ["added", "updated", "removed"]);
    assert_eq!(audit[1]["previous_email"], "ada@contoso.com");

    let runs = project.run(&["runs", "list", "--format", "json"]).expect(0).json();
    assert_eq!(runs.as_array().unwrap().len(), 3);
    assert_eq!(runs[0]["outcome"], "applied");
    assert_eq!(runs[0]["removed"], 1);
    let shown = project.run(&["runs", "show", &runs[2]["run_id"].to_string(), "--format", "json"]).expect(0).json();
    assert_eq!(shown["changes"][0]["member"], "add");
}

#[test]
fn bad_member_input_is_a_usage_error_and_stores_nothing() {
    let project = Project::standard();
    let bad_oid = project.run(&["members", "add", "--teamspace", "acme", "--oid", "12345", "--email", "a@b.co"]);
    assert!(bad_oid.expect(2).stderr.contains("--oid"), "{}", bad_oid.stderr);
    let bad_email = project.run(&["members", "add", "--teamspace", "acme", "--oid", ADA, "--email", "not-an-email"]);
    assert!(bad_email.expect(2).stderr.contains("--email"));
    let no_teamspace = project.run(&["members", "add", "--teamspace", "nope", "--oid", ADA, "--email", "a@b.co"]);
    assert!(no_teamspace.expect(2).stderr.contains("no teamspace `nope`"));
    let missing = project.run(&["members", "remove", "--teamspace", "acme", "--oid", ADA]);
    assert!(missing.expect(2).stderr.contains("not a member"));
    assert_eq!(project.run(&["runs", "list", "--format", "json"]).json(), serde_json::json!([]));
    project.run(&["runs", "show", "42"]).expect(2);
}

#[test]
fn teamspace_list_shows_counts_and_last_runs() {
    let project = Project::standard();
    project.run(&["members", "add", "--teamspace", "globex", "--oid", ADA, "--email", "ada@contoso.com"]).expect(0);
    let list = project.run(&["teamspace", "list", "--format", "json"]).expect(0).json();
    let globex = list.as_array().unwrap().iter().find(|t| t["name"] == "globex").unwrap();
    assert_eq!(globex["members"], 1);
    assert_eq!(globex["sources"][0]["source"], "manual");
    assert_eq!(globex["sources"][0]["last_outcome"], "applied");
    let table = project.run(&["teamspace", "list"]).expect(0).stdout.clone();
    assert!(table.starts_with("TEAMSPACE"), "{table}");
}

#[tokio::test]
async fn read_commands_do_not_wait_for_a_writer() {
    let project = Project::standard();
    project.run(&["members", "add", "--teamspace", "acme", "--oid", ADA, "--email", "ada@contoso.com"]).expect(0);
    // Another process holds the write lock (as a long import does).
    let url = project.database_url().to_owned();
    let store = c7sync::store::Store::open(&c7sync::store::StoreSettings::new(url)).await.unwrap();
    let writer = store.begin_write("acme").await.unwrap();
    let dir = project.dir.path().to_path_buf();
    let list = tokio::task::spawn_blocking(move || run_binary(&dir, &["members", "list", "--teamspace", "acme"], None));
    // The busy timeout is 30 s: a reader that queued behind the writer would still be waiting.
    let run = tokio::time::timeout(std::time::Duration::from_secs(10), list)
        .await
        .expect("members list waited for the writer")
        .unwrap();
    run.expect(0);
    assert!(run.stdout.contains("ada@contoso.com"));
    drop(writer);
}

#[test]
fn hostile_names_are_refused_or_neutralised_on_the_way_out() {
    let project = Project::standard();
    let oids: Vec<String> = (1..=6u128).map(|n| uuid::Uuid::from_u128(n).to_string()).collect();
    let csv = format!(
        "email,oid,display_name\n\
         a@contoso.com,{},\"=cmd|' /C calc'!A0\"\n\
         b@contoso.com,{},+SUM(A1:A9)\n\
         c@contoso.com,{},@HYPERLINK(\"http://x\")\n\
         d@contoso.com,{},-2+3\n\
         e@contoso.com,{},\"Eve\u{1b}[2J\"\n\
         f@contoso.com,{},\"Nul\u{0}\"\n",
        oids[0], oids[1], oids[2], oids[3], oids[4], oids[5]
    );
    project.write("names.csv", &csv);
    let refused = project.run(&["import", "names.csv", "--teamspace", "acme"]);
    assert!(refused.expect(4).stdout.contains("line 6, display_name"), "{}", refused.stdout);
    assert!(refused.stdout.contains("line 7, display_name"), "{}", refused.stdout);
    assert!(!refused.stdout.contains('\u{1b}') && !refused.stdout.contains('\u{0}'), "{:?}", refused.stdout);
    project.run(&["import", "names.csv", "--teamspace", "acme", "--skip-invalid"]).expect(0);
    let manual = project.run(&[
        "members",
        "add",
        "--teamspace",
        "acme",
        "--oid",
        ADA,
        "--email",
        "g@contoso.com",
        "--name",
        "G\u{7}",
    ]);
    assert!(manual.expect(2).stderr.contains("--name"), "{}", manual.stderr);

    let exported = project.run(&["members", "list", "--teamspace", "acme", "--format", "csv"]).expect(0).stdout.clone();
    let names: Vec<String> =
        csv::Reader::from_reader(exported.as_bytes()).records().map(|r| r.unwrap()[3].to_owned()).collect();
    assert_eq!(names.len(), 4, "{exported}");
    assert!(names.iter().all(|n| n.starts_with('\'')), "every formula cell is neutralised: {names:?}");
    // The export re-imports to the same members: the prefix is taken off again.
    project.write("exported.csv", &exported);
    let again = project.run(&["import", "exported.csv", "--teamspace", "acme", "--format", "json"]).expect(0).json();
    assert_eq!((again["added"].as_u64(), again["updated"].as_u64()), (Some(0), Some(0)), "{again}");
    let stored = project.run(&["members", "list", "--teamspace", "acme", "--format", "json"]).expect(0).json();
    let stored: Vec<&str> = stored.as_array().unwrap().iter().map(|m| m["display_name"].as_str().unwrap()).collect();
    assert!(stored.contains(&"=cmd|' /C calc'!A0") && stored.contains(&"-2+3"), "{stored:?}");
}
