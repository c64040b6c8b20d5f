//! Several `serve` replicas on one database (PostgreSQL with `C7SYNC_TEST_ENGINE=postgres`,
//! else one SQLite file): what one process changes, every replica answers within a second,
//! and writes from different replicas to one teamspace never lose each other.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::support::daemon::Daemon;
use crate::support::*;

const ADMIN_ENV: &str = "C7SYNC_ADMIN_TOKEN";
const ADMIN: &str = "replica-admin-token";
const SCIM: &str = "\n  [[teamspaces.sources]]\n  kind = \"scim\"\n";

/// How long a change made elsewhere may take to show on a replica (issue 17: 1 s).
const FOLLOW_WITHIN: Duration = Duration::from_secs(1);

async fn two_replicas(project: &Project) -> (Daemon, Daemon) {
    let first = Daemon::start(project.dir.path(), &[], &[(ADMIN_ENV, ADMIN)]).await;
    let second = Daemon::start(project.dir.path(), &[], &[(ADMIN_ENV, ADMIN)]).await;
    (first, second)
}

async fn member_status(client: &reqwest::Client, daemon: &Daemon, oid: &str) -> StatusCode {
    let url = daemon.url(&format!("/v1/teamspaces/acme/members/{oid}"));
    client.get(url).bearer_auth(ADMIN).send().await.unwrap().status()
}

/// Polls until every replica answers `wanted` for the member; returns how long that took.
async fn until_all_answer(client: &reqwest::Client, replicas: &[&Daemon], oid: &str, wanted: StatusCode) -> Duration {
    let since = Instant::now();
    loop {
        let mut all = true;
        for replica in replicas {
            all &= member_status(client, replica, oid).await == wanted;
        }
        if all {
            return since.elapsed();
        }
        assert!(since.elapsed() < Duration::from_secs(10), "replicas never answered {wanted} for {oid}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_made_anywhere_is_answered_by_every_replica_within_a_second() {
    let project = acme_project(SCIM);
    let (first, second) = two_replicas(&project).await;
    let client = reqwest::Client::new();
    // Both replicas have cached "not provisioned" for Ada.
    assert_eq!(member_status(&client, &first, ADA).await, StatusCode::NOT_FOUND);
    assert_eq!(member_status(&client, &second, ADA).await, StatusCode::NOT_FOUND);

    // A third process (the CLI) adds her.
    project.run(&["members", "add", "--teamspace", "acme", "--oid", ADA, "--email", "ada@contoso.com"]).expect(0);
    let added = until_all_answer(&client, &[&first, &second], ADA, StatusCode::OK).await;
    assert!(added < FOLLOW_WITHIN, "an addition took {added:?} to reach every replica");

    // SCIM on the first replica provisions Grace; the second answers for her.
    let token = project.run(&["scim-token", "create", "--teamspace", "acme"]).expect(0).stdout.trim().to_owned();
    let grace = uuid::Uuid::from_u128(0x7c9e_6679_7425_40de_944b_e07f_c1f9_0ae7);
    let grace_text = grace.to_string();
    let posted =
        post_scim_user(&client, &first.url("/scim/v2/Users"), &token, "grace@contoso.com", grace).await.unwrap();
    assert_eq!(posted.status(), StatusCode::CREATED);
    let provisioned = until_all_answer(&client, &[&second], &grace_text, StatusCode::OK).await;
    assert!(provisioned < FOLLOW_WITHIN, "a SCIM write took {provisioned:?} to reach the other replica");

    // The token is revoked by the CLI: within a second no replica accepts it.
    let id = token.split('_').nth(1).unwrap().to_owned();
    project.run(&["scim-token", "revoke", &id]).expect(0);
    let revoked = Instant::now();
    for replica in [&first, &second] {
        loop {
            let listed = client.get(replica.url("/scim/v2/Users")).bearer_auth(&token).send().await.unwrap();
            if listed.status() == StatusCode::UNAUTHORIZED {
                break;
            }
            assert!(revoked.elapsed() < FOLLOW_WITHIN, "a revoked token still works on a replica");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // Removal is followed as fast as addition.
    project.run(&["members", "remove", "--teamspace", "acme", "--oid", ADA]).expect(0);
    let removed = until_all_answer(&client, &[&first, &second], ADA, StatusCode::NOT_FOUND).await;
    assert!(removed < FOLLOW_WITHIN, "a removal took {removed:?} to reach every replica");
}

#[tokio::test(flavor = "multi_thread")]
async fn scim_writes_spread_over_two_replicas_lose_nothing() {
    let project = acme_project(SCIM);
    let (first, second) = two_replicas(&project).await;
    let token = project.run(&["scim-token", "create", "--teamspace", "acme"]).expect(0).stdout.trim().to_owned();
    let client = reqwest::Client::new();
    const USERS: u128 = 60;
    let mut posts = Vec::new();
    for n in 0..USERS {
        let replica = if n % 2 == 0 { &first } else { &second };
        let url = replica.url("/scim/v2/Users");
        let (client, token) = (client.clone(), token.clone());
        posts.push(tokio::spawn(async move {
            let oid = uuid::Uuid::from_u128(0x5000_0000_0000_4000_8000_0000_0000_0000 + n);
            post_scim_user(&client, &url, &token, &format!("dev{n}@contoso.com"), oid).await.unwrap().status()
        }));
    }
    for post in posts {
        assert_eq!(post.await.unwrap(), StatusCode::CREATED);
    }
    let store = c7sync::store::Store::open(&c7sync::store::StoreSettings::new(project.database_url())).await.unwrap();
    let acme = store.teamspace("acme").await.unwrap();
    assert_eq!(store.count_members(acme.id).await.unwrap(), USERS as u64, "every acknowledged write is a member");
    assert_eq!(store.check_integrity().await.unwrap(), Vec::<String>::new());
    let audit = store.audit(&c7sync::store::AuditFilter { limit: 1_000, ..Default::default() }).await.unwrap();
    assert_eq!(audit.len(), USERS as usize, "one audit event per member, none lost or doubled");
    store.close().await;
}

async fn readiness(client: &reqwest::Client, daemon: &Daemon) -> StatusCode {
    client.get(daemon.url("/readyz")).send().await.map(|r| r.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
}

/// Polls `/readyz` until it answers `wanted`, for at most `within`.
async fn until_ready_is(client: &reqwest::Client, daemon: &Daemon, wanted: StatusCode, within: Duration) {
    let since = Instant::now();
    while readiness(client, daemon).await != wanted {
        assert!(since.elapsed() < within, "/readyz never answered {wanted} within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_outage_fails_readiness_and_the_replica_recovers_by_itself() {
    if !on_postgres() {
        eprintln!("skipped on SQLite: faults.rs covers the outages of its file");
        return;
    }
    // A server of its own: this test stops it.
    let server = tokio::task::spawn_blocking(postgres::OwnServer::start).await.unwrap();
    let url = postgres::fresh_database_on(&server.url).await;
    let config = format!(
        "database = \"{url}\"\n[[teamspaces]]\nname = \"acme\"\ntenant_id = \"{TENANT}\"\naudience = \"{AUDIENCE}\"\n{SCIM}"
    );
    let project = Project::new(&config);
    project.run(&["members", "add", "--teamspace", "acme", "--oid", ADA, "--email", "ada@contoso.com"]).expect(0);
    let daemon = Daemon::start(project.dir.path(), &[], &[(ADMIN_ENV, ADMIN)]).await;
    let client = reqwest::Client::new();
    assert_eq!(readiness(&client, &daemon).await, StatusCode::OK);

    let server = tokio::task::spawn_blocking(move || {
        server.stop();
        server
    })
    .await
    .unwrap();
    until_ready_is(&client, &daemon, StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(15)).await;
    assert_eq!(client.get(daemon.url("/healthz")).send().await.unwrap().status(), StatusCode::OK, "alive, not ready");

    tokio::task::spawn_blocking(move || server.resume()).await.unwrap();
    until_ready_is(&client, &daemon, StatusCode::OK, Duration::from_secs(30)).await;
    // Reads and writes work again without a restart.
    assert_eq!(member_status(&client, &daemon, ADA).await, StatusCode::OK);
    let grace = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
    project.run(&["members", "add", "--teamspace", "acme", "--oid", grace, "--email", "grace@contoso.com"]).expect(0);
    until_all_answer(&client, &[&daemon], grace, StatusCode::OK).await;
}

/// A process on another host, as it writes itself into a run it owns.
const ELSEWHERE: &str = "linux/another-host/00000000-0000-0000-0000-000000000000/4242/1";

/// Records a `running` run of acme's `csv:hr`, owned by a process on another host whose last
/// heartbeat was at `heartbeat`; returns its id.
async fn run_on_another_host(db: &TestDb, heartbeat: i64) -> i64 {
    let client = inspect(db.store()).await;
    sqlx::query_scalar(
        "INSERT INTO runs (teamspace_id, source_id, trigger, input, outcome, started_at, source_version, owner, heartbeat_at) \
         SELECT s.teamspace_id, s.id, 'schedule', 'snapshot', 'running', $1, 0, $2, $1 FROM sources s \
         WHERE s.kind = 'csv' AND s.name = 'hr' RETURNING id",
    )
    .bind(heartbeat)
    .bind(ELSEWHERE)
    .fetch_one(&client)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_run_on_another_host_holds_its_source_while_it_beats_and_is_failed_once_it_stops() {
    use c7sync::clock::Millis;
    use c7sync::plan::Desired;
    use c7sync::reconcile::ReconcileError;
    use c7sync::store::{INTERRUPTED, RUN_LEASE};

    let db = temp_db().await;
    db.reconciler.run(&request("acme", "csv:hr"), Desired::Snapshot(claims(0..3))).await.unwrap();
    let now = Millis::now().0;
    let beating = run_on_another_host(&db, now).await;

    // This host cannot look the owner up; its fresh heartbeat says it lives.
    let refused = db.reconciler.start(request("acme", "csv:hr")).await.unwrap_err();
    assert!(matches!(refused, ReconcileError::AlreadyRunning { run, .. } if run.0 == beating), "{refused}");
    assert!(db.store().fail_abandoned_runs(Millis::now()).await.unwrap().is_empty(), "a beating run is left alone");

    // Its process dies: the heartbeat grows older than the lease, and the next run here fails it.
    let lease = i64::try_from(RUN_LEASE.as_millis()).unwrap();
    let client = inspect(db.store()).await;
    sqlx::query("UPDATE runs SET heartbeat_at = $1 WHERE id = $2")
        .bind(now - lease - 1_000)
        .bind(beating)
        .execute(&client)
        .await
        .unwrap();
    let started = db.reconciler.start(request("acme", "csv:hr")).await.unwrap();
    let (failed, _) = db.store().run(c7sync::domain::RunId(beating)).await.unwrap();
    assert!(failed.outcome == "failed" && failed.reason.as_deref() == Some(INTERRUPTED), "{failed:?}");

    // A run this process owns beats until it is finished, then stops.
    let mine = started.started.unwrap();
    assert!(db.store().beat(mine, Millis::now()).await.unwrap(), "a running run of ours renews its heartbeat");
    db.reconciler.run(&started, Desired::Snapshot(claims(0..3))).await.unwrap();
    assert!(!db.store().beat(mine, Millis::now()).await.unwrap(), "a finished run no longer beats");
}

/// The graph source's scheduled runs: (started_at, finished_at) in start order.
async fn scheduled_graph_runs(db: &sqlx::AnyPool) -> Vec<(i64, Option<i64>)> {
    sqlx::query_as(
        "SELECT r.started_at, r.finished_at FROM runs r JOIN sources s ON s.id = r.source_id \
         WHERE s.kind = 'graph' AND r.trigger = 'schedule' AND r.outcome <> 'running' ORDER BY r.started_at",
    )
    .fetch_all(db)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_scheduled_every_second_runs_once_per_tick_across_two_replicas() {
    use crate::support::fake_graph::{FakeGraph, Member, User};
    use c7sync::store::{Store, StoreSettings};

    let fake = FakeGraph::start(TENANT, GRAPH_CLIENT_ID, "s3cret", 100).await;
    fake.set_group(GRAPH_GROUP, (0..20).map(|n| Member::User(User::numbered(n))).collect());
    let project = acme_project(&graph_source(&fake, "dev", "C7SYNC_TEST_GRAPH_SECRET", r#"schedule = "* * * * * *""#));
    let env = [(ADMIN_ENV, ADMIN), ("C7SYNC_TEST_GRAPH_SECRET", "s3cret")];
    let first = Daemon::start(project.dir.path(), &[], &env).await;
    let second = Daemon::start(project.dir.path(), &[], &env).await;
    let store = Store::open(&StoreSettings::new(project.database_url().to_owned())).await.unwrap();
    let db = inspect(&store).await;

    let deadline = Instant::now() + Duration::from_secs(60);
    while scheduled_graph_runs(&db).await.len() < 8 {
        assert!(Instant::now() < deadline, "the scheduled source stopped running");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for daemon in [first, second] {
        let (status, _) = daemon.terminate(Duration::from_secs(30)).await;
        assert!(status.success());
    }

    let runs = scheduled_graph_runs(&db).await;
    // Ticks are a second apart: the runs fit the ticks their span holds (plus the tick each
    // replica catches up on at start). Both replicas running every tick would be twice that.
    let span_seconds = (runs.last().unwrap().0 - runs[0].0) / 1000;
    assert!(runs.len() as i64 <= span_seconds + 2, "{} runs in {span_seconds} s: a tick ran twice", runs.len());
    // And never two at once.
    for pair in runs.windows(2) {
        let ended = pair[0].1.expect("a finished run has a finish time");
        assert!(ended <= pair[1].0, "two runs of one source overlapped: {pair:?}");
    }
    let ticks: i64 = sqlx::query_scalar("SELECT count(*) FROM schedule_ticks WHERE source = 'graph:dev'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(runs.len() as i64 <= ticks, "{} runs, but only {ticks} ticks were claimed", runs.len());
    assert!(store.check_integrity().await.unwrap().is_empty());
}
