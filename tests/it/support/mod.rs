//! Shared helpers: a migrated database of its own for each test (a SQLite file in a temp dir,
//! or with `C7SYNC_TEST_ENGINE=postgres` a fresh PostgreSQL database), a config writer, a
//! binary runner.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use c7sync::clock::Millis;
use c7sync::domain::{MaxRemovals, Oid, SourceName, TeamspaceName, Trigger};
use c7sync::plan::DesiredClaim;
use c7sync::reconcile::{Reconciler, RunRequest};
use c7sync::store::{Store, StoreSettings, TeamspaceSpec};
use tempfile::TempDir;

pub mod daemon;
pub mod fake_entra;
pub mod fake_graph;
pub mod postgres;
pub mod receiver;
pub mod token_app;

pub const TENANT: &str = "00000000-0000-0000-0000-0000000000aa";
/// Ada's Entra object id, for tests that drive the binary with one member.
pub const ADA: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
pub const AUDIENCE: &str = "00000000-0000-0000-0000-0000000000bb";

/// A store on a fresh SQLite file with teamspaces `acme` and `globex` configured.
pub struct TestDb {
    pub dir: TempDir,
    pub url: String,
    pub reconciler: Reconciler,
}

impl TestDb {
    pub fn store(&self) -> &Store {
        self.reconciler.store()
    }

    /// A second, independent connection pool on the same file (another process, in effect).
    pub async fn second_reconciler(&self) -> Reconciler {
        Reconciler::new(Store::open(&StoreSettings::new(&self.url)).await.unwrap())
    }
}

/// Ends a test about SQLite's own file (its WAL, its permissions, a disk filling under it)
/// when the suite runs on PostgreSQL, saying so; PostgreSQL's counterparts are tested apart.
macro_rules! sqlite_only {
    ($why:expr) => {
        if $crate::support::on_postgres() {
            eprintln!("skipped on PostgreSQL: {}", $why);
            return;
        }
    };
}
pub(crate) use sqlite_only;

/// The variable that runs the suite on PostgreSQL: `C7SYNC_TEST_ENGINE=postgres`.
pub const ENGINE_VARIABLE: &str = "C7SYNC_TEST_ENGINE";

/// Whether this run of the suite is on PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var(ENGINE_VARIABLE).is_ok_and(|engine| engine == "postgres")
}

/// A database of its own for one test on the engine under test: a SQLite file in `dir`, or a
/// fresh PostgreSQL database.
pub async fn fresh_url(dir: &Path) -> String {
    if on_postgres() {
        postgres::fresh_database().await
    } else {
        format!("sqlite://{}", dir.join("c7sync.db").display())
    }
}

/// A client of the test's own on the store's database, for inspecting tables on either engine.
pub async fn inspect(store: &Store) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new().max_connections(1).connect(store.url()).await.unwrap()
}

pub async fn temp_db() -> TestDb {
    temp_db_with(MaxRemovals::Percent(20.0)).await
}

pub async fn temp_db_with(max_removals: MaxRemovals) -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_url(dir.path()).await;
    let store = Store::open(&StoreSettings::new(&url)).await.unwrap();
    let specs: Vec<_> = ["acme", "globex"]
        .iter()
        .map(|name| TeamspaceSpec {
            name: name.parse::<TeamspaceName>().unwrap(),
            tenant_id: TENANT.parse().unwrap(),
            audience: AUDIENCE.into(),
            required_scope: "mcp.access".into(),
            max_removals,
        })
        .collect();
    store.sync_teamspaces(&specs, Millis::now()).await.unwrap();
    TestDb { dir, url, reconciler: Reconciler::new(store) }
}

pub fn oid(n: u128) -> Oid {
    Oid::from_u128(0x3f25_04e0_4f89_41d3_9a0c_0000_0000_0000 + n)
}

pub fn claim(n: u128) -> DesiredClaim {
    DesiredClaim {
        oid: oid(n),
        email: format!("dev{n}@contoso.com").parse().unwrap(),
        display_name: format!("Developer {n}").parse().ok(),
    }
}

pub fn claims(range: std::ops::Range<u128>) -> Vec<DesiredClaim> {
    range.map(claim).collect()
}

pub fn request(teamspace: &str, source: &str) -> RunRequest {
    RunRequest::new(teamspace, source.parse::<SourceName>().unwrap(), Trigger::Sync)
}

/// The members' emails in `teamspace`, sorted.
pub async fn member_emails(db: &TestDb, teamspace: &str) -> Vec<String> {
    let teamspace = db.store().teamspace(teamspace).await.unwrap();
    let mut emails: Vec<String> =
        db.store().list_members(teamspace.id).await.unwrap().into_iter().map(|m| m.email).collect();
    emails.sort();
    emails
}

/// Counts rows of a table (test inspection only).
pub async fn count(store: &Store, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&inspect(store).await).await.unwrap()
}

/// Every row a run can touch, as text: equal fingerprints prove "nothing changed".
pub async fn fingerprint(store: &Store) -> Vec<String> {
    let queries = [
        "SELECT teamspace_id || ' ' || HEX(oid) || ' ' || email || ' ' || coalesce(display_name, '-') || ' ' || attrs_source_id || ' ' || updated_at FROM members ORDER BY 1",
        "SELECT teamspace_id || ' ' || HEX(oid) || ' ' || source_id FROM claims ORDER BY 1",
        "SELECT id || ' ' || run_id || ' ' || action || ' ' || HEX(oid) FROM audit_events ORDER BY id",
        "SELECT teamspace_id || ' ' || event_id || ' ' || status FROM outbox ORDER BY event_id",
        "SELECT 'cursor ' || teamspace_id || ' ' || next_event_id FROM delivery_cursors ORDER BY teamspace_id",
        "SELECT id || ' ' || outcome FROM runs ORDER BY id",
        "SELECT 'planned ' || count(*) FROM planned_changes",
        "SELECT name || ' v' || version FROM teamspaces ORDER BY name",
        "SELECT id || ' v' || version FROM sources ORDER BY id",
    ];
    let problems = store.check_integrity().await.unwrap();
    assert!(problems.is_empty(), "integrity: {problems:?}");
    let mut all = Vec::new();
    let client = inspect(store).await;
    for sql in queries {
        let sql = if on_postgres() { sql.replace("HEX(oid)", "encode(oid, 'hex')") } else { sql.replace("HEX", "hex") };
        let rows: Vec<String> = sqlx::query_scalar(&sql).fetch_all(&client).await.unwrap();
        all.extend(rows);
    }
    all
}

/// Integrity problems of the database at `path` (opened the way the binary opens it).
pub fn integrity_of(path: &Path) -> Vec<String> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = Store::open(&StoreSettings::new(format!("sqlite://{}", path.display()))).await.unwrap();
        store.check_integrity().await.unwrap()
    })
}

/// A fresh database URL from code that is not async (or is inside another runtime).
pub fn fresh_url_blocking(dir: &Path) -> String {
    if !on_postgres() {
        return format!("sqlite://{}", dir.join("c7sync.db").display());
    }
    let dir = dir.to_owned();
    std::thread::spawn(move || tokio::runtime::Runtime::new().unwrap().block_on(fresh_url(&dir))).join().unwrap()
}

/// A project directory with a config file, for driving the binary.
pub struct Project {
    pub dir: TempDir,
    /// The database its config names: `c7sync.db` beside the config, or on PostgreSQL a fresh
    /// database in its place.
    database: String,
}

/// How configs written by tests name the database; on PostgreSQL it is replaced.
const TEST_DATABASE: &str = "\"sqlite://c7sync.db\"";

impl Project {
    pub fn new(config: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let project = Project { database: fresh_url_blocking(dir.path()), dir };
        project.write_config(config);
        project
    }

    /// Replaces its config (naming the same database).
    pub fn write_config(&self, config: &str) {
        let config = if on_postgres() {
            config.replace(TEST_DATABASE, &format!("\"{}\"", self.database))
        } else {
            config.to_owned()
        };
        std::fs::write(self.path("c7sync.toml"), config).unwrap();
    }

    /// The URL of the database its config names.
    pub fn database_url(&self) -> &str {
        &self.database
    }

    /// The starter config with two teamspaces and a CSV source.
    pub fn standard() -> Project {
        Project::new(&standard_config("20%"))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Runs `c7sync` in the project directory.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, None)
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        run_binary(self.dir.path(), args, stdin)
    }
}

pub fn standard_config(max_removals: &str) -> String {
    format!(
        r#"database = "sqlite://c7sync.db"

[[teamspaces]]
name = "acme"
tenant_id = "{TENANT}"
audience = "{AUDIENCE}"
max_removals = "{max_removals}"

  [[teamspaces.sources]]
  kind = "csv"
  id = "hr"
  path = "hr.csv"
  mode = "replace"

[[teamspaces]]
name = "globex"
tenant_id = "{TENANT}"
audience = "{AUDIENCE}"
"#
    )
}

/// The outcome of one binary invocation.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr))
    }

    #[track_caller]
    pub fn expect(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "exit code; stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

pub fn run_binary(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Run {
    run_binary_full(dir, args, stdin, &[])
}

/// Runs `c7sync` with extra environment variables (secrets).
pub fn run_binary_with_env(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Run {
    run_binary_full(dir, args, None, envs)
}

fn run_binary_full(dir: &Path, args: &[&str], stdin: Option<&[u8]>, envs: &[(&str, &str)]) -> Run {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_c7sync"))
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(dir)
        .env_remove("C7SYNC_CONFIG")
        .env_remove("C7SYNC_DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(bytes) = stdin {
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    let Output { status, stdout, stderr } = child.wait_with_output().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// `POST /Users` of an active user with this userName and object id (as `externalId`).
pub async fn post_scim_user(
    client: &reqwest::Client,
    users_url: &str,
    token: &str,
    user_name: &str,
    oid: uuid::Uuid,
) -> reqwest::Result<reqwest::Response> {
    let body = serde_json::json!({"userName": user_name, "externalId": oid.to_string(), "active": true});
    client
        .post(users_url)
        .bearer_auth(token)
        .header("content-type", "application/scim+json")
        .body(body.to_string())
        .send()
        .await
}

/// The client id the fake Graph accepts in daemon tests.
pub const GRAPH_CLIENT_ID: &str = "00000000-0000-0000-0000-0000000000c1";
/// The group daemon tests list.
pub const GRAPH_GROUP: uuid::Uuid = uuid::Uuid::from_u128(0x9000_0000_0000_4000_8000_0000_0000_0001);

/// Library-level settings of a graph source reading `groups` from `fake` in `mode`, as
/// [`GRAPH_CLIENT_ID`]; disabled users are skipped, guests kept (the config's defaults).
pub fn graph_settings(
    fake: &fake_graph::FakeGraph,
    groups: &[uuid::Uuid],
    mode: c7sync::config::GraphMode,
) -> c7sync::config::GraphSettings {
    c7sync::config::GraphSettings {
        groups: groups.to_vec(),
        client_id: GRAPH_CLIENT_ID.parse().unwrap(),
        client_secret_env: "UNUSED_IN_LIBRARY_TESTS".into(),
        include_disabled: false,
        include_guests: true,
        graph_url: fake.url().parse().unwrap(),
        authority_url: fake.url().parse().unwrap(),
        mode,
        full_every: c7sync::config::DEFAULT_FULL_EVERY,
    }
}

/// A `[[teamspaces.sources]]` table for a graph source reading [`GRAPH_GROUP`] from `fake`;
/// `extra` is added as is (a `schedule = …` line, or nothing).
pub fn graph_source(fake: &fake_graph::FakeGraph, id: &str, secret_env: &str, extra: &str) -> String {
    format!(
        r#"
  [[teamspaces.sources]]
  kind = "graph"
  id = "{id}"
  groups = ["{GRAPH_GROUP}"]
  client_id = "{GRAPH_CLIENT_ID}"
  client_secret_env = "{secret_env}"
  graph_url = "{url}"
  authority_url = "{url}"
  {extra}
"#,
        url = fake.url()
    )
}

/// A project with one teamspace, `acme` (max_removals 50%), holding `sources`.
pub fn acme_project(sources: &str) -> Project {
    let config = format!(
        r#"database = "sqlite://c7sync.db"

[[teamspaces]]
name = "acme"
tenant_id = "{TENANT}"
audience = "{AUDIENCE}"
max_removals = "50%"
{sources}"#
    );
    Project::new(&config)
}

/// A tiny deterministic sequence for kill delays: reproducible runs, no extra dependency.
pub struct Sequence(pub u64);

impl Sequence {
    /// The next number below `bound`.
    pub fn next_below(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}
