//! The schema on both engines: the two migration folders cannot drift apart, and PostgreSQL's
//! migrations apply once on a real server even when replicas start together.

use c7sync::store::{StoreError, UniqueKey};
use sqlx::Row;

use crate::support::postgres;

static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

fn migration_names(engine: &str) -> Vec<String> {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(engine);
    let mut names: Vec<String> = std::fs::read_dir(&folder)
        .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn both_engines_carry_the_same_migrations_by_name() {
    let sqlite = migration_names("sqlite");
    assert!(sqlite.len() >= 6, "{sqlite:?}");
    assert_eq!(sqlite, migration_names("postgres"), "migrations/sqlite and migrations/postgres differ");
    assert!(sqlite.iter().all(|name| name.ends_with(".sql")), "{sqlite:?}");
}

#[tokio::test]
async fn replicas_starting_together_apply_the_postgres_migrations_once() {
    let url = postgres::fresh_database().await;
    let (a, b) = (postgres::pool(&url).await, postgres::pool(&url).await);
    // sqlx's migrator holds a PostgreSQL advisory lock while it migrates: the second waits,
    // then finds every migration applied.
    let (first, second) = tokio::join!(POSTGRES.run(&a), POSTGRES.run(&b));
    first.unwrap();
    second.unwrap();
    let applied: i64 =
        sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success").fetch_one(&a).await.unwrap();
    assert_eq!(applied as usize, migration_names("postgres").len());

    // What the store's engine-neutral code relies on: ids drawn from the sequence never
    // collide across writers, and a uniqueness violation names its index.
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT nextval('audit_event_ids') FROM generate_series(1, 3)").fetch_all(&a).await.unwrap();
    let more: i64 = sqlx::query_scalar("SELECT nextval('audit_event_ids')").fetch_one(&b).await.unwrap();
    assert!(ids.windows(2).all(|w| w[0] < w[1]) && !ids.contains(&more), "{ids:?} {more}");

    let teamspace: i64 = sqlx::query_scalar(
        "INSERT INTO teamspaces (name, tenant_id, audience, required_scope, max_removals, created_at, updated_at) \
         VALUES ('acme', 't', 'a', 's', '20%', 0, 0) RETURNING id",
    )
    .fetch_one(&a)
    .await
    .unwrap();
    let insert = |id: &'static str, external: &'static str| {
        sqlx::query(
            "INSERT INTO scim_users (teamspace_id, id, seq, user_name, user_name_key, external_id, active, resource, \
             version, created_at, updated_at) VALUES ($1, $2, 1, 'Ada', 'ada', $3, true, '{}', 1, 0, 0)",
        )
        .bind(teamspace)
        .bind(id)
        .bind(external)
    };
    insert("1", "x").execute(&a).await.unwrap();
    let duplicate = StoreError::from(insert("2", "y").execute(&a).await.unwrap_err());
    assert!(matches!(duplicate, StoreError::Duplicate(UniqueKey::ScimUserName)), "{duplicate:?}");

    // The running-runs rules of 0004 hold: a running run has no finish time.
    let source: i64 = sqlx::query_scalar(
        "INSERT INTO sources (teamspace_id, kind, name, created_at) VALUES ($1, 'manual', '', 0) RETURNING id",
    )
    .bind(teamspace)
    .fetch_one(&a)
    .await
    .unwrap();
    let run = |outcome: &'static str, finished: Option<i64>| {
        sqlx::query(
            "INSERT INTO runs (teamspace_id, source_id, trigger, input, outcome, started_at, finished_at, source_version) \
             VALUES ($1, $2, 'manual', 'deltas', $3, 0, $4, 0) RETURNING id",
        )
        .bind(teamspace)
        .bind(source)
        .bind(outcome)
        .bind(finished)
    };
    let running = run("running", None).fetch_one(&a).await.unwrap();
    assert!(running.try_get::<i64, _>(0).unwrap() > 0);
    assert!(run("running", Some(1)).execute(&a).await.is_err(), "a running run with a finish time was accepted");
    assert!(run("applied", None).execute(&a).await.is_err(), "a finished run without a finish time was accepted");
}
