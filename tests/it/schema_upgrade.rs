//! A database made by an earlier release, upgraded by `Store::open`: the rows survive the
//! table rebuilds of later migrations, and the rebuilt tables enforce the same rules.

use std::path::Path;

use c7sync::store::{EventFilter, Store, StoreSettings};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};

/// The migrations an earlier release shipped, applied to a new database at `url`.
async fn database_at_migration(url: &str, last: &str, scratch: &Path) -> SqliteConnection {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    let mut files: Vec<_> = std::fs::read_dir(&shipped).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let older = scratch.join("migrations");
    std::fs::create_dir(&older).unwrap();
    for file in files.iter().filter(|f| f.file_name().unwrap().to_str().unwrap() <= last) {
        std::fs::copy(file, older.join(file.file_name().unwrap())).unwrap();
    }
    let options: SqliteConnectOptions = url.parse().unwrap();
    let mut connection = options.create_if_missing(true).foreign_keys(false).connect().await.unwrap();
    sqlx::migrate::Migrator::new(older).await.unwrap().run(&mut connection).await.unwrap();
    connection
}

const OLDER_RELEASE: &[&str] = &[
    "INSERT INTO teamspaces (id, name, tenant_id, audience, required_scope, max_removals, created_at, updated_at) \
     VALUES (1, 'acme', '00000000-0000-0000-0000-0000000000aa', 'aud', 'mcp.access', '20%', 1, 1)",
    "INSERT INTO sources (id, teamspace_id, kind, name, created_at) VALUES (1, 1, 'csv', 'hr', 1)",
    "INSERT INTO members (teamspace_id, oid, email, display_name, email_hash, name_hash, attrs_source_id, \
     created_at, updated_at) VALUES (1, x'3f2504e04f8941d39a0c0305e82c3301', 'ada@contoso.com', 'Ada', 7, 8, 1, 2, 2)",
    "INSERT INTO claims (teamspace_id, oid, source_id, created_at) VALUES (1, x'3f2504e04f8941d39a0c0305e82c3301', 1, 2)",
    "INSERT INTO runs (id, teamspace_id, source_id, trigger, input, outcome, started_at, finished_at, added, \
     source_version, first_event_id, last_event_id) VALUES (1, 1, 1, 'import', 'snapshot', 'applied', 2, 2, 2, 0, 1, 2)",
    "INSERT INTO runs (id, teamspace_id, source_id, trigger, input, outcome, started_at, finished_at, removed, \
     source_version) VALUES (2, 1, 1, 'import', 'snapshot', 'dry_run', 3, 3, 1, 1)",
    "INSERT INTO audit_events (id, teamspace_id, run_id, source_id, action, oid, email, display_name, role, \
     occurred_at) VALUES (1, 1, 1, 1, 'added', x'3f2504e04f8941d39a0c0305e82c3301', 'ada@contoso.com', 'Ada', \
     'developer', 2)",
    "INSERT INTO audit_events (id, teamspace_id, run_id, source_id, action, oid, email, display_name, role, \
     previous_email, occurred_at) VALUES (2, 1, 1, 1, 'updated', x'3f2504e04f8941d39a0c0305e82c3301', \
     'ada@contoso.com', 'Ada', 'developer', 'ada@old.contoso.com', 2)",
    "INSERT INTO outbox (teamspace_id, event_id, status, attempts, delivered_at) VALUES (1, 1, 'delivered', 1, 5)",
    "INSERT INTO outbox (teamspace_id, event_id, attempts, next_attempt_at, last_error) \
     VALUES (1, 2, 3, 9, 'HTTP 503')",
    "INSERT INTO planned_changes (run_id, seq, oid, claim, member, email) \
     VALUES (2, 0, x'3f2504e04f8941d39a0c0305e82c3301', 'drop', 'remove', 'ada@contoso.com')",
];

#[tokio::test]
async fn a_database_from_before_the_check_rebuild_keeps_its_events_and_rules() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c7sync.db").display());
    let mut old = database_at_migration(&url, "0004_running_runs.sql", dir.path()).await;
    for statement in OLDER_RELEASE {
        sqlx::query(statement).execute(&mut old).await.unwrap();
    }
    old.close().await.unwrap();

    let store = Store::open(&StoreSettings::new(&url)).await.unwrap();

    assert_eq!(store.check_integrity().await.unwrap(), Vec::<String>::new());
    let events = store.list_events(&EventFilter { limit: 10, ..EventFilter::default() }).await.unwrap();
    let summary: Vec<_> = events
        .iter()
        .map(|e| (e.event.id, e.event.kind.as_str(), <&str>::from(e.status), e.attempts, e.last_error.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [(1, "member.added", "delivered", 1, None), (2, "member.updated", "pending", 3, Some("HTTP 503"))]
    );
    let heads = store.pending_heads().await.unwrap();
    assert_eq!(heads.iter().map(|h| (h.teamspace_id, h.event_id)).collect::<Vec<_>>(), [(1, 2)]);
    // Every event so far has its outbox row: delivery's cursor starts past the last of them.
    let mut new = SqliteConnection::connect(&url).await.unwrap();
    let cursors: Vec<(i64, i64)> =
        sqlx::query_as("SELECT teamspace_id, next_event_id FROM delivery_cursors").fetch_all(&mut new).await.unwrap();
    assert_eq!(cursors, [(1, 3)]);

    // The rebuilt tables still refuse what the old CHECK constraints refused, and accept the rest.
    let refused = [
        "INSERT INTO audit_events (id, teamspace_id, run_id, source_id, action, oid, email, role, occurred_at) \
         VALUES (3, 1, 1, 1, 'renamed', x'00', 'x@contoso.com', 'developer', 2)",
        "UPDATE outbox SET status = 'lost' WHERE event_id = 2",
        "INSERT INTO planned_changes (run_id, seq, oid, claim, member, email) \
         VALUES (2, 1, x'00', 'keep', 'moved', 'x@contoso.com')",
        "INSERT INTO planned_changes (run_id, seq, oid, claim, member, email) \
         VALUES (2, 1, x'00', 'take', 'add', 'x@contoso.com')",
    ];
    for statement in refused {
        let error = sqlx::query(statement).execute(&mut new).await.unwrap_err().to_string();
        assert!(error.contains("CHECK constraint failed"), "{statement}: {error}");
    }
    sqlx::query("UPDATE outbox SET status = 'dead' WHERE event_id = 2").execute(&mut new).await.unwrap();
    let planned: (String, String) =
        sqlx::query_as("SELECT claim, member FROM planned_changes WHERE run_id = 2").fetch_one(&mut new).await.unwrap();
    assert_eq!(planned, ("drop".to_owned(), "remove".to_owned()));
    let indexes: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'outbox'")
            .fetch_all(&mut new)
            .await
            .unwrap();
    assert!(indexes.contains(&"outbox_pending".to_owned()), "{indexes:?}");
}

#[tokio::test]
async fn members_keep_their_rows_when_the_oid_check_moves_to_the_integrity_check() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c7sync.db").display());
    let mut old = database_at_migration(&url, "0010_graph_delta.sql", dir.path()).await;
    for statement in &OLDER_RELEASE[..4] {
        sqlx::query(statement).execute(&mut old).await.unwrap();
    }
    old.close().await.unwrap();

    let store = Store::open(&StoreSettings::new(&url)).await.unwrap();
    let oid = "3f2504e0-4f89-41d3-9a0c-0305e82c3301".parse().unwrap();
    let member = store.member(1, oid).await.unwrap().expect("the member survives the rebuild");
    assert_eq!(
        (member.email.as_str(), member.display_name.as_deref(), member.role.as_str(), member.sources.len()),
        ("ada@contoso.com", Some("Ada"), "developer", 1)
    );
    assert_eq!((member.created_at.0, member.updated_at.0), (2, 2));

    let mut new = SqliteConnection::connect(&url).await.unwrap();
    let duplicate = sqlx::query(OLDER_RELEASE[2]).execute(&mut new).await.unwrap_err().to_string();
    assert!(duplicate.contains("UNIQUE constraint failed"), "{duplicate}");
    // A short oid written around the one write path is no longer refused by the table: the
    // integrity check names it instead.
    sqlx::query(
        "INSERT INTO members (teamspace_id, oid, email, email_hash, attrs_source_id, created_at, updated_at) \
         VALUES (1, x'00', 'short@contoso.com', 1, 1, 3, 3)",
    )
    .execute(&mut new)
    .await
    .unwrap();
    sqlx::query("INSERT INTO claims (teamspace_id, oid, source_id, created_at) VALUES (1, x'00', 1, 3)")
        .execute(&mut new)
        .await
        .unwrap();
    assert_eq!(store.check_integrity().await.unwrap(), ["1 members whose oid is not 16 bytes"]);
}
