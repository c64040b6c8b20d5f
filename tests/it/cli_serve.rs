//! `c7sync sync` with a graph source, and `c7sync serve`, as a user runs them: the binary, a
//! config file, a fake Graph on 127.0.0.1, the secret in the environment.

use std::time::{Duration, Instant};

use c7sync::store::{RunRecord, Store, StoreSettings};

use crate::support::daemon::{message, Daemon};
use crate::support::fake_graph::{FakeGraph, Fault, Member, User};
use crate::support::*;

const CLIENT_ID: &str = GRAPH_CLIENT_ID;
const SECRET_ENV: &str = "C7SYNC_TEST_GRAPH_SECRET";
const SECRET: &str = "daemon-test-secret";
const GROUP: uuid::Uuid = GRAPH_GROUP;

fn users(range: std::ops::Range<u128>) -> Vec<Member> {
    range.map(|n| Member::User(User::numbered(n))).collect()
}

async fn runs(project: &Project) -> Vec<RunRecord> {
    let url = project.database_url().to_owned();
    let store = Store::open(&StoreSettings::new(&url)).await.unwrap();
    let mut runs = store.list_runs(None, 10_000).await.unwrap();
    runs.reverse();
    runs
}

/// The finished runs of `source`. A run the daemon is in the middle of is on record as
/// `running` while these tests read the database.
fn of<'a>(runs: &'a [RunRecord], source: &str) -> Vec<&'a RunRecord> {
    runs.iter().filter(|r| r.source == source && r.outcome != "running").collect()
}

/// Polls the database until `done` holds for the runs, or panics.
async fn wait_for_runs(project: &Project, within: Duration, done: impl Fn(&[RunRecord]) -> bool) -> Vec<RunRecord> {
    let deadline = Instant::now() + within;
    loop {
        let runs = runs(project).await;
        if done(&runs) {
            return runs;
        }
        assert!(Instant::now() < deadline, "runs never reached the expected state: {runs:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_runs_a_graph_source_and_fails_it_on_an_incomplete_listing() {
    let fake = FakeGraph::start(TENANT, CLIENT_ID, SECRET, 2).await;
    fake.set_group(GROUP, users(0..5));
    let project = acme_project(&graph_source(&fake, "dev", SECRET_ENV, ""));

    let first = {
        let project_dir = project.dir.path().to_owned();
        tokio::task::spawn_blocking(move || {
            run_binary_with_env(&project_dir, &["sync", "--format", "json"], &[(SECRET_ENV, SECRET)])
        })
        .await
        .unwrap()
    };
    let report = first.expect(0).json();
    assert_eq!((report["source"].as_str(), report["added"].as_u64()), (Some("graph:dev"), Some(5)));
    assert_eq!(report["listing"]["pages"], 3);

    fake.set_group(GROUP, users(2..5));
    fake.fault_always(GROUP, 2, Fault::Unavailable { retry_after: Some(0) });
    let failed = tokio::task::spawn_blocking({
        let dir = project.dir.path().to_owned();
        move || run_binary_with_env(&dir, &["sync"], &[(SECRET_ENV, SECRET)])
    })
    .await
    .unwrap();
    failed.expect(1);
    assert!(
        failed.stdout.contains("FAILED (nothing changed)") && failed.stdout.contains("page 2 of group"),
        "{}",
        failed.stdout
    );
    assert_eq!(runs(&project).await.last().unwrap().outcome, "failed");
    let teamspace_members = project.run(&["members", "list", "--teamspace", "acme", "--format", "json"]);
    assert_eq!(teamspace_members.expect(0).json().as_array().unwrap().len(), 5, "nothing removed");

    // Without the secret in the environment: a failed run naming the variable.
    let no_secret = tokio::task::spawn_blocking({
        let dir = project.dir.path().to_owned();
        move || run_binary_with_env(&dir, &["sync"], &[])
    })
    .await
    .unwrap();
    no_secret.expect(1);
    assert!(no_secret.stdout.contains(SECRET_ENV), "{}", no_secret.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_runs_every_scheduled_source_and_stops_cleanly_on_sigterm() {
    let fake = FakeGraph::start(TENANT, CLIENT_ID, SECRET, 999).await;
    fake.set_group(GROUP, users(0..5));
    let sources = format!(
        "{}{}\n  [[teamspaces.sources]]\n  kind = \"csv\"\n  id = \"hr\"\n  path = \"hr.csv\"\n  mode = \"replace\"\n  schedule = \"* * * * * *\"\n",
        graph_source(&fake, "dev", SECRET_ENV, r#"schedule = "* * * * * *""#),
        graph_source(&fake, "broken", "C7SYNC_TEST_NEVER_SET", r#"schedule = "*/2 * * * * *""#),
    );
    let project = acme_project(&sources);
    project.write("hr.csv", "email,oid\nhr1@contoso.com,3f2504e0-4f89-41d3-9a0c-0305e82c3301\n");

    let daemon = Daemon::start(project.dir.path(), &[], &[(SECRET_ENV, SECRET)]).await;
    let runs = wait_for_runs(&project, Duration::from_secs(30), |runs| {
        of(runs, "graph:dev").len() >= 3 && of(runs, "csv:hr").len() >= 3 && of(runs, "graph:broken").len() >= 2
    })
    .await;
    assert!(of(&runs, "graph:dev")
        .iter()
        .all(|r| r.outcome == "applied" && r.trigger == c7sync::domain::Trigger::Schedule));
    assert!(of(&runs, "csv:hr").iter().all(|r| r.outcome == "applied"));
    // A failing source keeps failing on its own schedule without stopping the others.
    assert!(of(&runs, "graph:broken")
        .iter()
        .all(|r| r.outcome == "failed" && r.reason.as_deref().unwrap_or_default().contains("C7SYNC_TEST_NEVER_SET")));

    // A change in Entra arrives with a later tick.
    fake.set_group(GROUP, users(0..7));
    wait_for_runs(&project, Duration::from_secs(15), |runs| of(runs, "graph:dev").iter().any(|r| r.counts.added == 2))
        .await;

    let client = reqwest::Client::new();
    let health = client.get(daemon.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = client.get(daemon.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(client.get(daemon.url("/nope")).send().await.unwrap().status(), 404);

    let (status, logs) = daemon.terminate(Duration::from_secs(20)).await;
    assert!(status.success(), "{status}; {logs:#?}");
    assert!(logs.iter().any(|l| message(l) == "stopped"), "{logs:#?}");
    // Background tasks stop before the store closes: nothing complains while shutting down
    // (but the broken source's run in progress at SIGTERM may end, failed, as it always does).
    let shutting_down = logs.iter().position(|l| message(l).starts_with("shutting down")).expect("a shutdown line");
    let complaints: Vec<_> = logs[shutting_down..]
        .iter()
        .filter(|l| l["level"] == "WARN" || l["level"] == "ERROR")
        .filter(|l| !message(l).starts_with("run failed"))
        .collect();
    assert!(complaints.is_empty(), "{complaints:#?}");
    let text = serde_json::to_string(&logs).unwrap();
    assert!(!text.contains(SECRET), "the client secret appeared in the log");
    let finished: Vec<_> = logs.iter().filter(|l| message(l) == "run finished").collect();
    assert!(finished.iter().all(|l| l["fields"]["duration_ms"].is_u64() && l["span"]["source"].is_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_skips_ticks_while_a_run_is_going_and_lets_it_finish_on_shutdown() {
    let fake = FakeGraph::start(TENANT, CLIENT_ID, SECRET, 999).await;
    fake.set_group(GROUP, users(0..3));
    // Every listing takes 2.5 s; the schedule fires every second.
    fake.fault_always(GROUP, 1, Fault::Delay(Duration::from_millis(2500)));
    let project = acme_project(&graph_source(&fake, "dev", SECRET_ENV, r#"schedule = "* * * * * *""#));

    let mut daemon = Daemon::start(project.dir.path(), &[], &[(SECRET_ENV, SECRET)]).await;
    let skipped = |l: &serde_json::Value| message(l).contains("tick skipped");
    daemon.wait_for_log(Duration::from_secs(20), skipped).await;
    wait_for_runs(&project, Duration::from_secs(20), |runs| !runs.is_empty()).await;
    // Wait for the next skipped tick: a run is then in the middle of its listing.
    let skips = daemon.logs().iter().filter(|l| skipped(l)).count();
    daemon.wait_for_log(Duration::from_secs(20), |_| true).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while daemon.logs().iter().filter(|l| skipped(l)).count() == skips {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, logs) = daemon.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{status}; {logs:#?}");

    let runs = runs(&project).await;
    let started = fake.requests_for(GROUP, 1);
    assert_eq!(runs.len() as u32, started, "the run in progress at SIGTERM was finished, not dropped: {runs:#?}");
    assert!(runs.iter().all(|r| r.outcome == "applied"), "{runs:#?}");
    assert_eq!(fake.counters(|c| c.max_in_flight), 1, "two runs of one source overlapped");
    // A run's `started_at` is when its tick asked for it, stamped just before the check for a
    // run elsewhere: a tick that fires the millisecond the other replica is committing stamps a
    // time a hair before that run's end and then waits for it. Listings never overlapped
    // (`max_in_flight` above); the runs follow each other to within that hair.
    for pair in runs.windows(2) {
        let (next, previous) = (pair[1].started_at.0, pair[0].finished_at.unwrap().0);
        assert!(next + 100 >= previous, "runs overlap: {pair:#?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_on_one_database_run_each_scheduled_tick_once() {
    let fake = FakeGraph::start(TENANT, CLIENT_ID, SECRET, 999).await;
    fake.set_group(GROUP, users(0..5));
    let project = acme_project(&graph_source(&fake, "dev", SECRET_ENV, r#"schedule = "* * * * * *""#));
    let first = Daemon::start(project.dir.path(), &[], &[(SECRET_ENV, SECRET)]).await;
    let second = Daemon::start(project.dir.path(), &[], &[(SECRET_ENV, SECRET)]).await;
    let before = of(&runs(&project).await, "graph:dev").len();
    wait_for_runs(&project, Duration::from_secs(30), |runs| of(runs, "graph:dev").len() >= before + 6).await;
    let (first_status, _) = first.terminate(Duration::from_secs(10)).await;
    let (second_status, _) = second.terminate(Duration::from_secs(10)).await;
    assert!(first_status.success() && second_status.success());

    // Each tick (one a second) was claimed once, and each claimed tick is one run. Were the
    // claim ignored, both replicas would run every tick: twice as many runs as ticks.
    let runs = of(&runs(&project).await, "graph:dev").len();
    let url = project.database_url().to_owned();
    let store = Store::open(&StoreSettings::new(&url)).await.unwrap();
    let ticks: Vec<i64> =
        sqlx::query_scalar("SELECT tick_at FROM schedule_ticks WHERE teamspace = 'acme' AND source = 'graph:dev'")
            .fetch_all(&inspect(&store).await)
            .await
            .unwrap();
    assert_eq!(ticks.len(), runs, "{} ticks claimed, {runs} runs", ticks.len());
    assert!(runs >= 6, "{runs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_never_run_one_source_at_once() {
    let fake = FakeGraph::start(TENANT, CLIENT_ID, SECRET, 999).await;
    fake.set_group(GROUP, users(0..3));
    // Every listing takes 2.5 s; the schedule fires every second, on both replicas.
    fake.fault_always(GROUP, 1, Fault::Delay(Duration::from_millis(2500)));
    let project = acme_project(&graph_source(&fake, "dev", SECRET_ENV, r#"schedule = "* * * * * *""#));
    let first = Daemon::start(project.dir.path(), &[], &[(SECRET_ENV, SECRET)]).await;
    let second = Daemon::start(project.dir.path(), &[], &[(SECRET_ENV, SECRET)]).await;
    let skipped_elsewhere = |l: &serde_json::Value| message(l).contains("still going in another process");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(first.logs().iter().any(skipped_elsewhere) || second.logs().iter().any(skipped_elsewhere))
        || of(&runs(&project).await, "graph:dev").len() < 3
    {
        assert!(Instant::now() < deadline, "no replica skipped a tick the other was running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (first_status, _) = first.terminate(Duration::from_secs(30)).await;
    let (second_status, _) = second.terminate(Duration::from_secs(30)).await;
    assert!(first_status.success() && second_status.success());

    assert_eq!(fake.counters(|c| c.max_in_flight), 1, "two runs of one source overlapped");
    let runs = of(&runs(&project).await, "graph:dev").into_iter().cloned().collect::<Vec<_>>();
    assert!(runs.iter().all(|r| r.outcome == "applied"), "{runs:#?}");
    // A run's `started_at` is when its tick asked for it, stamped just before the check for a
    // run elsewhere: a tick that fires the millisecond the other replica is committing stamps a
    // time a hair before that run's end and then waits for it. Listings never overlapped
    // (`max_in_flight` above); the runs follow each other to within that hair.
    for pair in runs.windows(2) {
        let (next, previous) = (pair[1].started_at.0, pair[0].finished_at.unwrap().0);
        assert!(next + 100 >= previous, "runs overlap: {pair:#?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_in_delta_mode_takes_a_removed_member_away_and_sends_its_event_within_a_tick() {
    const WEBHOOK_ENV: &str = "C7SYNC_TEST_WEBHOOK_SECRET";
    let fake = FakeGraph::start(TENANT, CLIENT_ID, SECRET, 999).await;
    fake.set_group(GROUP, users(0..5));
    let receiver = crate::support::receiver::Receiver::start(b"whsec_delta").await;
    let source = graph_source(&fake, "dev", SECRET_ENV, "mode = \"delta\"\n  schedule = \"* * * * * *\"");
    let delivery =
        format!("\n[delivery]\nwebhook_url = \"{}\"\nsigning_secret_env = \"{WEBHOOK_ENV}\"\n", receiver.url());
    let project = acme_project(&format!("{source}{delivery}"));
    let daemon = Daemon::start(project.dir.path(), &[], &[(SECRET_ENV, SECRET), (WEBHOOK_ENV, "whsec_delta")]).await;
    let set_up = wait_for_runs(&project, Duration::from_secs(30), |runs| {
        of(runs, "graph:dev").iter().any(|r| r.outcome == "applied" && r.counts.added == 5)
    })
    .await;
    let delivered = |n: usize| receiver.with(|r| r.ids.len()) >= n;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !delivered(5) {
        assert!(Instant::now() < deadline, "the five additions were never delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let removed_at = Instant::now();
    fake.set_group(GROUP, users(1..5));
    wait_for_runs(&project, Duration::from_secs(30), |runs| {
        of(runs, "graph:dev").iter().any(|r| r.counts.removed == 1)
    })
    .await;
    while !delivered(6) {
        assert!(Instant::now() < deadline + Duration::from_secs(30), "the removal was never delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A one-second schedule: the removal is gone, and told, within a few ticks.
    assert!(removed_at.elapsed() < Duration::from_secs(10), "{:?}", removed_at.elapsed());
    let (status, logs) = daemon.terminate(Duration::from_secs(10)).await;
    assert!(status.success(), "{status}; {logs:#?}");
    // One full listing set the state up; every later tick read only the delta queries.
    assert_eq!(fake.requests_to("transitiveMembers"), 1, "runs before: {set_up:#?}");
    let ticks = of(&runs(&project).await, "graph:dev").len();
    assert!(fake.requests_to("groups/delta") >= ticks, "{ticks} ticks");
}
