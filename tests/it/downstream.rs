//! Downstream: webhook delivery to a real receiver on 127.0.0.1 that verifies signatures, the
//! `/v1` read API over real HTTP, and `/metrics`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use c7sync::api::ApiState;
use c7sync::clock::Millis;
use c7sync::delivery::{self, DeliveryOptions};
use c7sync::http::{router, AppState};
use c7sync::metrics::Metrics;
use c7sync::plan::{Delta, Desired};
use c7sync::scim::ScimState;
use c7sync::store::{DeliveryStatus, EventFilter};
use tokio_util::sync::CancellationToken;

use crate::support::daemon::Daemon;
use crate::support::receiver::Receiver;
use crate::support::*;

const SECRET: &[u8] = b"whsec_test_signing_secret";

fn options(receiver: &Receiver, secret: &[u8]) -> DeliveryOptions {
    DeliveryOptions {
        base_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        poll: Duration::from_millis(20),
        batch: 500,
        ..DeliveryOptions::new(receiver.url().parse().unwrap(), secret)
    }
}

const WEBHOOK_SECRET_ENV: &str = "C7SYNC_TEST_WEBHOOK_SECRET";

/// The standard project, delivering to `receiver` with the secret from [`WEBHOOK_SECRET_ENV`].
fn delivering_project(receiver: &Receiver, max_removals: &str) -> Project {
    Project::new(&format!(
        "{}\n[delivery]\nwebhook_url = \"{}\"\nsigning_secret_env = \"{WEBHOOK_SECRET_ENV}\"\n",
        standard_config(max_removals),
        receiver.url()
    ))
}

struct Worker {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Worker {
    fn start(db: &TestDb, options: DeliveryOptions) -> Worker {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(delivery::run(db.store().clone(), options, Metrics::new(), shutdown.clone()));
        Worker { shutdown, task }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
    }
}

async fn audit_ids(db: &TestDb) -> Vec<i64> {
    sqlx::query_scalar("SELECT id FROM audit_events ORDER BY id").fetch_all(&inspect(db.store()).await).await.unwrap()
}

async fn wait_until(within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "not reached within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn pending(db: &TestDb) -> i64 {
    db.store().outbox_backlog().await.unwrap().0
}

#[tokio::test(flavor = "multi_thread")]
async fn events_arrive_once_each_in_order_and_are_marked_delivered() {
    let db = temp_db().await;
    db.reconciler.run(&request("acme", "csv:hr"), Desired::Snapshot(claims(0..1200))).await.unwrap();
    let removals = (0..5).map(|n| Delta::Drop(oid(n))).collect();
    db.reconciler.run(&request("acme", "manual"), Desired::Deltas(vec![Delta::Upsert(claim(5000))])).await.unwrap();
    db.reconciler.run(&request("acme", "csv:hr"), Desired::Deltas(removals)).await.unwrap();
    db.reconciler.run(&request("globex", "manual"), Desired::Deltas(vec![Delta::Upsert(claim(1))])).await.unwrap();
    let expected = audit_ids(&db).await;

    let receiver = Receiver::start(SECRET).await;
    let worker = Worker::start(&db, options(&receiver, SECRET));
    wait_until(Duration::from_secs(20), || receiver.ids().len() >= expected.len()).await;
    worker.stop().await;

    let mut ids = receiver.ids();
    assert_eq!(ids.len(), expected.len(), "each event once");
    // In order per teamspace; teamspaces may interleave.
    let acme: Vec<i64> = ids.iter().copied().filter(|id| *id != *expected.last().unwrap()).collect();
    assert!(acme.windows(2).all(|w| w[0] < w[1]), "in order");
    ids.sort_unstable();
    assert_eq!(ids, expected);
    assert_eq!(pending(&db).await, 0);
    // Each batch sent was recorded: one delivered row per event, after one attempt.
    let recorded: Vec<(i64, String, i64)> =
        sqlx::query_as("SELECT event_id, status, attempts FROM outbox ORDER BY event_id")
            .fetch_all(&inspect(db.store()).await)
            .await
            .unwrap();
    assert_eq!(recorded, expected.iter().map(|id| (*id, "delivered".to_owned(), 1)).collect::<Vec<_>>());
    assert_eq!(db.store().check_integrity().await.unwrap(), Vec::<String>::new());
    assert_eq!(receiver.with(|r| r.bad_signatures), 0);
}

/// A run records nothing for delivery; each attempt records its batch. The listings and the
/// backlog read both kinds of pending event, recorded (retries) and untried, in one order.
#[tokio::test]
async fn events_are_recorded_as_delivery_tries_them_and_listed_in_one_order() {
    let db = temp_db().await;
    db.reconciler.run(&request("acme", "csv:hr"), Desired::Snapshot(claims(0..10))).await.unwrap();
    db.reconciler.run(&request("globex", "manual"), Desired::Deltas(vec![Delta::Upsert(claim(1))])).await.unwrap();
    let store = db.store();
    let acme = store.teamspace("acme").await.unwrap().id;
    let ids = audit_ids(&db).await;
    let (acme_ids, globex_id) = (&ids[..10], ids[10]);
    assert_eq!(count(store, "outbox").await, 0);

    // The first four are sent and delivered; the next three fail once.
    store.mark_delivered(acme, acme_ids[0], acme_ids[3], Millis(7)).await.unwrap();
    store.mark_failed(acme, (acme_ids[4], acme_ids[6]), "HTTP 503", Millis(9), false).await.unwrap();
    let heads = store.pending_heads().await.unwrap();
    let mut heads: Vec<_> =
        heads.iter().map(|h| (h.teamspace_id, h.event_id, h.attempts, h.next_attempt_at.0)).collect();
    heads.sort_unstable();
    assert_eq!(heads[0], (acme, acme_ids[4], 1, 9), "the retry leads");
    assert_eq!(heads[1].1, globex_id);

    let list = |status: Option<DeliveryStatus>, after: Option<i64>, limit: i64| {
        let filter = EventFilter { teamspace_id: None, status, after, limit };
        async move { store.list_events(&filter).await.unwrap() }
    };
    let all = list(None, None, 100).await;
    assert_eq!(all.iter().map(|e| e.event.id).collect::<Vec<_>>(), ids, "every event once, in id order");
    let states: Vec<_> = all.iter().map(|e| (<&str>::from(e.status), e.attempts)).collect();
    assert_eq!(&states[..4], [("delivered", 1); 4]);
    assert_eq!(&states[4..7], [("pending", 1); 3]);
    assert_eq!(&states[7..], [("pending", 0); 4]);
    assert_eq!(all[0].delivered_at, Some(Millis(7)));
    assert_eq!(all[4].last_error.as_deref(), Some("HTTP 503"));
    // Pages across recorded and untried events.
    let page = list(None, Some(acme_ids[5]), 3).await;
    assert_eq!(page.iter().map(|e| e.event.id).collect::<Vec<_>>(), [acme_ids[6], acme_ids[7], acme_ids[8]]);
    let pending = list(Some(DeliveryStatus::Pending), None, 100).await;
    assert_eq!(pending.iter().map(|e| e.event.id).collect::<Vec<_>>(), ids[4..]);
    assert_eq!(list(Some(DeliveryStatus::Delivered), None, 100).await.len(), 4);
    assert_eq!(store.outbox_backlog().await.unwrap().0, 7);

    // The next batch takes the retries first, then the untried events behind them.
    let batch = store.pending_batch(acme, 5).await.unwrap();
    assert_eq!(batch.iter().map(|e| e.id).collect::<Vec<_>>(), acme_ids[4..9]);
    store.mark_failed(acme, (acme_ids[4], acme_ids[8]), "HTTP 410 Gone", Millis(11), true).await.unwrap();
    let dead = list(Some(DeliveryStatus::Dead), None, 100).await;
    assert_eq!(
        dead.iter().map(|e| (e.event.id, e.attempts)).collect::<Vec<_>>(),
        [(acme_ids[4], 2), (acme_ids[5], 2), (acme_ids[6], 2), (acme_ids[7], 1), (acme_ids[8], 1)]
    );
    assert_eq!(store.pending_batch(acme, 5).await.unwrap().iter().map(|e| e.id).collect::<Vec<_>>(), [acme_ids[9]]);
    // Recording the same batch twice (two processes, a lease lost mid-send) adds nothing.
    store.mark_delivered(acme, acme_ids[0], acme_ids[3], Millis(8)).await.unwrap();
    assert_eq!(count(store, "outbox").await, 9);
    assert_eq!(store.check_integrity().await.unwrap(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_that_is_down_then_up_gets_everything_in_order() {
    let db = temp_db().await;
    let mut receiver = Receiver::start(SECRET).await;
    receiver.down().await;
    db.reconciler.run(&request("acme", "csv:hr"), Desired::Snapshot(claims(0..50))).await.unwrap();
    let worker = Worker::start(&db, options(&receiver, SECRET));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let attempts: i64 = sqlx::query_scalar("SELECT coalesce(max(attempts), 0) FROM outbox")
            .fetch_one(&inspect(db.store()).await)
            .await
            .unwrap();
        if attempts >= 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the worker did not try");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pending(&db).await, 50, "nothing is lost while the receiver is down");

    db.reconciler.run(&request("acme", "csv:hr"), Desired::Snapshot(claims(10..60))).await.unwrap();
    receiver.up().await;
    let expected = audit_ids(&db).await;
    wait_until(Duration::from_secs(20), || receiver.ids().len() >= expected.len()).await;
    worker.stop().await;
    assert_eq!(receiver.ids(), expected, "all of them, once, in order");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_500_is_retried_and_a_bad_signature_ends_dead_until_retried() {
    let db = temp_db().await;
    db.reconciler.run(&request("acme", "csv:hr"), Desired::Snapshot(claims(0..3))).await.unwrap();
    let receiver = Receiver::start(SECRET).await;
    receiver.with(|r| r.fail_next = 2);
    let worker = Worker::start(&db, options(&receiver, SECRET));
    wait_until(Duration::from_secs(10), || receiver.ids().len() == 3).await;
    worker.stop().await;
    assert_eq!(receiver.with(|r| r.failed), 2);
    let attempts: Vec<i64> = sqlx::query_scalar("SELECT attempts FROM outbox ORDER BY event_id")
        .fetch_all(&inspect(db.store()).await)
        .await
        .unwrap();
    assert_eq!(attempts, [3, 3, 3]);

    // Signed with the wrong secret: the receiver refuses (401) until the batch is parked.
    db.reconciler.run(&request("acme", "csv:hr"), Desired::Snapshot(claims(0..5))).await.unwrap();
    let worker = Worker::start(&db, options(&receiver, b"not the receiver's secret"));
    let store = db.store().clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let dead = store
            .list_events(&EventFilter {
                status: Some(c7sync::store::DeliveryStatus::Dead),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        if dead.len() == 2 {
            assert!(dead.iter().all(|e| e.attempts == 5 && e.last_error.as_deref() == Some("HTTP 401 Unauthorized")));
            break;
        }
        assert!(Instant::now() < deadline, "never parked as dead");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.stop().await;
    assert_eq!(receiver.with(|r| r.bad_signatures), 5);
    assert_eq!(receiver.ids().len(), 3, "nothing with a bad signature was accepted");

    // `events retry` puts it back; with the right secret it goes through.
    let dead = store
        .list_events(&EventFilter {
            status: Some(c7sync::store::DeliveryStatus::Dead),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    for event in &dead {
        store.retry_event(event.event.id).await.unwrap();
    }
    let worker = Worker::start(&db, options(&receiver, SECRET));
    wait_until(Duration::from_secs(10), || receiver.ids().len() == 5).await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_killed_mid_delivery_redelivers_the_same_events_after_restart() {
    let mut receiver = Receiver::start(SECRET).await;
    // The receiver records a batch, then takes its time to answer: the daemon dies meanwhile.
    receiver.with(|r| r.delay = Some(Duration::from_secs(30)));
    let project = delivering_project(&receiver, "50%");
    project.write("hr.csv", "email,oid\nada@contoso.com,3f2504e0-4f89-41d3-9a0c-0305e82c3301\nbob@contoso.com,3f2504e0-4f89-41d3-9a0c-0305e82c3302\n");
    project.run(&["sync"]).expect(0);
    let envs = [(WEBHOOK_SECRET_ENV, std::str::from_utf8(SECRET).unwrap())];

    let daemon = Daemon::start(project.dir.path(), &[], &envs).await;
    wait_until(Duration::from_secs(20), || receiver.ids().len() == 2).await;
    drop(daemon); // SIGKILL while the request is in flight
    let first = receiver.ids();

    receiver.down().await;
    receiver.with(|r| r.delay = None);
    receiver.up().await;
    let daemon = Daemon::start(project.dir.path(), &[], &envs).await;
    wait_until(Duration::from_secs(20), || receiver.ids().len() == 4).await;
    let (status, _) = daemon.terminate(Duration::from_secs(20)).await;
    assert!(status.success());
    let ids = receiver.ids();
    assert_eq!(ids[2..], first[..], "redelivered with the same ids");
    let listed = project.run(&["events", "list", "--format", "json"]);
    let events = listed.expect(0).json();
    assert!(events.as_array().unwrap().iter().all(|e| e["status"] == "delivered"), "{events}");
}

struct Api {
    db: TestDb,
    base: String,
    client: reqwest::Client,
    _server: tokio::task::JoinHandle<()>,
}

const ADMIN: &str = "admin-token-for-tests";

async fn api() -> Api {
    let db = temp_db().await;
    let mut teamspaces = HashMap::new();
    for name in ["acme", "globex"] {
        teamspaces.insert(name.to_owned(), db.store().teamspace(name).await.unwrap().id);
    }
    let members = c7sync::lookup::MemberLookup::new(db.store().clone());
    tokio::spawn(members.clone().keep_fresh());
    let config = c7sync::config::parse(std::path::Path::new("c7sync.toml"), "").unwrap();
    let tokens = c7sync::token::TokenService::for_config(
        &config,
        &teamspaces,
        members.clone(),
        c7sync::token::KeySettings::default(),
        c7sync::clock::Clock::System,
        Metrics::new(),
    )
    .unwrap();
    let admin = Some(c7sync::secret::SecretHash::of(ADMIN));
    let config = std::sync::Arc::new(config);
    let api = ApiState::new(db.reconciler.clone(), config, admin, teamspaces, members, std::sync::Arc::new(tokens));
    let scim = ScimState::new(db.reconciler.clone(), HashMap::new());
    let app = router(AppState::new(db.store().clone(), Metrics::new()), scim, Some(api));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Api { db, base: format!("http://{addr}"), client: reqwest::Client::new(), _server: server }
}

impl Api {
    async fn get(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    }
}

#[tokio::test]
async fn the_lookup_api_answers_hit_miss_other_teamspace_and_refuses_bad_tokens() {
    let api = api().await;
    api.db.reconciler.run(&request("acme", "csv:hr"), Desired::Snapshot(claims(0..3))).await.unwrap();
    let hit = format!("/v1/teamspaces/acme/members/{}", oid(1));
    let (status, member) = api.get(&hit, Some(ADMIN)).await;
    assert_eq!(status, 200, "{member}");
    assert_eq!((member["email"].as_str(), member["sources"][0].as_str()), (Some("dev1@contoso.com"), Some("csv:hr")));
    assert_eq!(member["tenant_id"], TENANT);

    let miss = format!("/v1/teamspaces/acme/members/{}", oid(99));
    let (status, error) = api.get(&miss, Some(ADMIN)).await;
    assert_eq!((status, error["error"]["code"].as_str()), (404, Some("member_not_found")));
    // Answers are cached; a run (from any process) shows within the cache's check interval.
    api.db.reconciler.run(&request("acme", "manual"), Desired::Deltas(vec![Delta::Upsert(claim(99))])).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while api.get(&miss, Some(ADMIN)).await.0 != 200 {
        assert!(Instant::now() < deadline, "the new member never showed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _) = api.get(&format!("/v1/teamspaces/globex/members/{}", oid(1)), Some(ADMIN)).await;
    assert_eq!(status, 404, "another teamspace's member is not this one's");
    let (status, error) = api.get("/v1/teamspaces/nope/members", Some(ADMIN)).await;
    assert_eq!((status, error["error"]["code"].as_str()), (404, Some("teamspace_not_found")));
    assert_eq!(api.get(&hit, None).await.0, 401);
    assert_eq!(api.get(&hit, Some("wrong")).await.0, 401);
    let (status, error) = api.get("/v1/teamspaces/acme/members/not-a-guid", Some(ADMIN)).await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("invalid_oid")));

    // Keyset paging covers every member once.
    let (_, first) = api.get("/v1/teamspaces/acme/members?limit=3", Some(ADMIN)).await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = api.get(&format!("/v1/teamspaces/acme/members?limit=3&cursor={cursor}"), Some(ADMIN)).await;
    assert_eq!(first["members"].as_array().unwrap().len() + second["members"].as_array().unwrap().len(), 4);
    assert!(second["next_cursor"].is_null());

    let (_, runs) = api.get("/v1/teamspaces/acme/runs", Some(ADMIN)).await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 2);
    let (_, events) = api.get("/v1/teamspaces/acme/events?limit=2", Some(ADMIN)).await;
    let after = events["next_after"].as_i64().unwrap();
    let (_, rest) = api.get(&format!("/v1/teamspaces/acme/events?after={after}"), Some(ADMIN)).await;
    assert_eq!(rest["events"].as_array().unwrap().len(), 2);
    assert_eq!(rest["events"][0]["type"], "member.added");

    let (status, openapi) = api.get("/v1/openapi.json", None).await;
    assert_eq!(status, 200);
    for path in [
        "/teamspaces/{teamspace}/members/{oid}",
        "/teamspaces/{teamspace}/members",
        "/teamspaces/{teamspace}/runs",
        "/teamspaces/{teamspace}/events",
    ] {
        assert!(openapi["paths"][path]["get"].is_object(), "{path} documented");
    }

    let (status, metrics) = api.get("/metrics", None).await;
    assert_eq!(status, 200);
    let text = metrics.as_str().unwrap();
    assert!(text.contains("c7sync_runs_total{teamspace=\"acme\",source=\"csv:hr\",outcome=\"applied\"} 1"), "{text}");
    assert!(text.contains("c7sync_members_added_total{teamspace=\"acme\",source=\"csv:hr\"} 3"), "{text}");
    assert!(text.contains("c7sync_outbox_pending 4"), "{text}");
    assert!(text.contains("c7sync_scim_request_duration_seconds") && text.ends_with("# EOF\n"), "{text}");

    // The database goes away: /readyz says so, /healthz does not care.
    assert_eq!(api.get("/readyz", None).await.0, 200);
    api.db.store().close().await;
    let (status, body) = api.get("/readyz", None).await;
    assert_eq!((status, body["status"].as_str()), (503, Some("unavailable")));
    assert_eq!(api.get("/healthz", None).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_daemons_on_one_database_deliver_each_event_once_and_the_survivor_takes_over() {
    let receiver = Receiver::start(SECRET).await;
    // A slow receiver: while one daemon waits for its answer, the other polls the same head.
    receiver.with(|r| r.delay = Some(Duration::from_millis(300)));
    let project = delivering_project(&receiver, "100%");
    let envs = [(WEBHOOK_SECRET_ENV, std::str::from_utf8(SECRET).unwrap())];
    let daemons =
        [Daemon::start(project.dir.path(), &[], &envs).await, Daemon::start(project.dir.path(), &[], &envs).await];
    let add = |n: u128| {
        let oid = uuid::Uuid::from_u128(0x3f2504e0_4f89_41d3_9a0c_0305e82c0000 + n).to_string();
        project
            .run(&["members", "add", "--teamspace", "acme", "--oid", &oid, "--email", &format!("dev{n}@contoso.com")])
            .expect(0);
    };
    for n in 0..6 {
        add(n);
        wait_until(Duration::from_secs(20), || receiver.ids().len() > n as usize).await;
    }
    let ids = receiver.ids();
    assert_eq!(ids.len(), 6, "an event was sent twice: {ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "out of order: {ids:?}");

    // SIGKILL the daemon that holds the lease: the other takes over at once (same host, the
    // holder is gone), and nothing is lost.
    let url = project.database_url().to_owned();
    let store = c7sync::store::Store::open(&c7sync::store::StoreSettings::new(&url)).await.unwrap();
    // Once the last batch is answered and marked: a batch in flight at the kill would rightly
    // be sent again (at least once).
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.outbox_backlog().await.unwrap().0 > 0 {
        assert!(Instant::now() < deadline, "the events were never marked delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let holder: String =
        sqlx::query_scalar("SELECT holder FROM delivery_leases").fetch_one(&inspect(&store).await).await.unwrap();
    let [a, b] = daemons;
    let (killed, survivor) = if holder.split('/').nth(3) == Some(&a.pid().to_string()) { (a, b) } else { (b, a) };
    assert_eq!(holder.split('/').nth(3), Some(killed.pid().to_string().as_str()), "{holder}");
    drop(killed);
    for n in 6..9 {
        add(n);
    }
    wait_until(Duration::from_secs(20), || receiver.ids().len() >= 9).await;
    let (status, _) = survivor.terminate(Duration::from_secs(20)).await;
    assert!(status.success());
    let ids = receiver.ids();
    assert_eq!(ids.len(), 9, "{ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "out of order: {ids:?}");
}
