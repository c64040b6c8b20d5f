//! Bad configuration through the real binary: exit 2, a message naming the file and the key.

use crate::support::*;

fn config_error(config: &str) -> String {
    let project = Project::new(config);
    let run = project.run(&["teamspace", "list"]);
    run.expect(2);
    assert!(run.stderr.contains("c7sync.toml"), "message names the file: {}", run.stderr);
    run.stderr
}

#[test]
fn malformed_toml_is_reported_with_its_location() {
    let stderr = config_error("[[teamspaces]\nname = \"acme\"\n");
    assert!(stderr.contains("line 1"), "{stderr}");
}

#[test]
fn an_invalid_guid_names_the_key() {
    let stderr = config_error(&standard_config("20%").replacen(TENANT, "not-a-guid", 1));
    assert!(stderr.contains("teamspaces[0].tenant_id") && stderr.contains("not-a-guid"), "{stderr}");
}

#[test]
fn duplicate_teamspaces_and_sources_are_refused() {
    let twice = standard_config("20%").replace("name = \"globex\"", "name = \"acme\"");
    assert!(config_error(&twice).contains("teamspace `acme` is defined twice"));
    let source_twice = standard_config("20%").replace(
        "mode = \"replace\"\n",
        "mode = \"replace\"\n\n  [[teamspaces.sources]]\n  kind = \"csv\"\n  id = \"hr\"\n  path = \"other.csv\"\n",
    );
    assert!(config_error(&source_twice).contains("source `csv:hr` is defined twice"));
}

#[test]
fn unknown_keys_and_bad_values_are_named() {
    let unknown = standard_config("20%").replace("mode = \"replace\"", "mode = \"replace\"\n  colour = \"blue\"");
    assert!(config_error(&unknown).contains("colour"));
    let removals = standard_config("lots");
    assert!(config_error(&removals).contains("max_removals"));
    let cron = standard_config("20%").replace("mode = \"replace\"", "mode = \"replace\"\n  schedule = \"61 * * * *\"");
    assert!(config_error(&cron).contains("schedule"));
}

#[test]
fn a_missing_config_says_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_binary(dir.path(), &["members", "list", "--teamspace", "acme"], None);
    run.expect(2);
    assert!(run.stderr.contains("c7sync init"), "{}", run.stderr);
}

#[test]
fn init_writes_a_valid_config_and_the_database_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    run_binary(dir.path(), &["init"], None).expect(0);
    assert!(dir.path().join("c7sync.toml").exists());
    assert!(dir.path().join("c7sync.db").exists());
    run_binary(dir.path(), &["teamspace", "list"], None).expect(0);
    // The starter's csv source has its file: the first sync works.
    let first = run_binary(dir.path(), &["sync", "--format", "json"], None);
    assert!(first.expect(0).stdout.contains("\"added\":4"), "{}", first.stdout);
    std::fs::remove_file(dir.path().join("developers.csv")).unwrap();
    let missing = run_binary(dir.path(), &["sync"], None);
    let resolved = dir.path().canonicalize().unwrap().join("developers.csv");
    assert!(
        missing.stdout.contains(&resolved.display().to_string())
            || missing.stderr.contains(&resolved.display().to_string()),
        "the error shows the path it resolved: {}{}",
        missing.stdout,
        missing.stderr
    );
    let again = run_binary(dir.path(), &["init"], None);
    again.expect(2);
    assert!(again.stderr.contains("--force"));
}

#[test]
fn the_database_flag_beats_the_environment_and_the_file() {
    let project = Project::standard();
    project.run(&["--database", "sqlite://other.db", "teamspace", "list"]).expect(0);
    assert!(project.path("other.db").exists());
    assert!(!project.path("c7sync.db").exists());
}

#[test]
fn changing_the_tenant_of_a_teamspace_with_members_is_refused() {
    let project = Project::standard();
    project.run(&["members", "add", "--teamspace", "acme", "--oid", ADA, "--email", "a@contoso.com"]).expect(0);
    let moved = standard_config("20%").replacen(TENANT, "00000000-0000-0000-0000-0000000000cc", 1);
    project.write_config(&moved);
    let run = project.run(&["members", "list", "--teamspace", "acme"]);
    assert!(run.expect(2).stderr.contains("would orphan them"), "{}", run.stderr);
    // A teamspace without members may move to another tenant.
    let globex_moved = standard_config("20%").replace(
        &format!("name = \"globex\"\ntenant_id = \"{TENANT}\""),
        "name = \"globex\"\ntenant_id = \"00000000-0000-0000-0000-0000000000cc\"",
    );
    project.write_config(&globex_moved);
    project.run(&["teamspace", "list"]).expect(0);
}

#[test]
fn relative_paths_in_the_config_follow_its_folder_not_the_working_directory() {
    sqlite_only!("the SQLite file's place follows the config's folder");
    let project = Project::standard();
    project.write("hr.csv", &format!("email,oid\nada@contoso.com,{ADA}\n"));
    let elsewhere = tempfile::tempdir().unwrap();
    let config = project.path("c7sync.toml");
    let run = run_binary(elsewhere.path(), &["--config", config.to_str().unwrap(), "sync"], None);
    run.expect(0);
    assert!(project.path("c7sync.db").exists(), "the database is created beside the config");
    assert!(!elsewhere.path().join("c7sync.db").exists(), "and not in the working directory");
    let listed = run_binary(
        elsewhere.path(),
        &["--config", config.to_str().unwrap(), "members", "list", "--teamspace", "acme", "--format", "json"],
        None,
    );
    assert_eq!(listed.expect(0).json()[0]["email"], "ada@contoso.com");
}

/// `standard_config` with one graph source carrying `extra` lines.
fn with_graph_source(extra: &str) -> String {
    format!(
        "{}\n  [[teamspaces.sources]]\n  kind = \"graph\"\n  id = \"dev\"\n  groups = [\"{GRAPH_GROUP}\"]\n  \
         client_id = \"{GRAPH_CLIENT_ID}\"\n  client_secret_env = \"GRAPH_SECRET\"\n  {extra}\n",
        standard_config("20%")
    )
}

#[test]
fn graph_modes_and_the_full_reconcile_interval_are_checked() {
    let valid = Project::new(&with_graph_source("mode = \"delta\"\n  full_every = \"6h\""));
    valid.run(&["teamspace", "list"]).expect(0);
    let mode = config_error(&with_graph_source("mode = \"sometimes\""));
    assert!(mode.contains("sources[") && mode.contains("mode") && mode.contains("`full` or `delta`"), "{mode}");
    let every = config_error(&with_graph_source("mode = \"delta\"\n  full_every = \"daily\""));
    assert!(every.contains("full_every") && every.contains("24h"), "{every}");
    let full = config_error(&with_graph_source("full_every = \"6h\""));
    assert!(full.contains("applies only with mode = \"delta\""), "{full}");
}
