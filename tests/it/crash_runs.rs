//! `c7sync import` of 200,000 rows and `c7sync sync` of a Graph group, each killed with
//! SIGKILL at random moments at least 20 times. Each attempt swaps the teamspace between two
//! disjoint sets of members (A and B), so a kill can land in the read, the plan or the write
//! of a run that changes everything. After every kill, by SQL:
//! - the integrity rules hold: every member has a claim, every audit event its applied run,
//!   and the reverse;
//! - the members are exactly A or exactly B: none or all of a run;
//! - at most one run is `running` (the one killed), and the next process that starts a run
//!   marks it `failed` as interrupted; at the end none is running.
//!
//! A final run converges and a second one changes nothing. The counts are printed.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use c7sync::store::{Store, StoreSettings, INTERRUPTED};

use crate::support::fake_graph::{FakeGraph, Member, User};
use crate::support::*;

const KILLS: usize = 20;

/// What the database holds after a kill.
#[derive(Debug, Default)]
struct AfterKill {
    in_a: i64,
    in_b: i64,
    members: i64,
    /// Ids of the runs `running`.
    running: Vec<i64>,
    /// Ids of the runs failed as interrupted.
    interrupted: Vec<i64>,
}

async fn after_kill(db: &str, a_domain: &str, b_domain: &str) -> AfterKill {
    let store = Store::open(&StoreSettings::new(db)).await.unwrap();
    let problems = store.check_integrity().await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let client = inspect(&store).await;
    let pool = &client;
    let count = |sql: String| async move { sqlx::query_scalar::<_, i64>(&sql).fetch_one(pool).await.unwrap() };
    let ids = |sql: String| async move { sqlx::query_scalar::<_, i64>(&sql).fetch_all(pool).await.unwrap() };
    let state = AfterKill {
        in_a: count(format!("SELECT count(*) FROM members WHERE email LIKE '%@{a_domain}'")).await,
        in_b: count(format!("SELECT count(*) FROM members WHERE email LIKE '%@{b_domain}'")).await,
        members: count("SELECT count(*) FROM members".into()).await,
        running: ids("SELECT id FROM runs WHERE outcome = 'running'".into()).await,
        interrupted: ids(format!("SELECT id FROM runs WHERE outcome = 'failed' AND reason = '{INTERRUPTED}'")).await,
    };
    client.close().await;
    store.close().await;
    state
}

/// The tally of one crash series.
#[derive(Debug, Default)]
struct Tally {
    attempts: usize,
    /// Kills that hit a live process.
    kills: usize,
    /// Of those, the ones that left a `running` run behind (they got past the run's start).
    left_running: usize,
    /// Attempts whose run completed before the kill came.
    completed: usize,
}

/// Runs `spawn(to_a)` (apply set A if true, else B: always the set not there now) until
/// `KILLS` kills have landed, killing each at a random moment within 1.1 × `full` (the
/// duration of an uninterrupted run), and checks the database after each.
async fn crash_series(
    name: &str,
    db: &str,
    domains: (&str, &str),
    size: i64,
    full: Duration,
    mut spawn: impl FnMut(bool) -> Child,
) -> Tally {
    let mut tally = Tally::default();
    let mut sequence = Sequence(0x5eed ^ size as u64);
    let mut last = after_kill(db, domains.0, domains.1).await;
    // `full` is measured once, often while other tests load the machine; a run that finishes
    // before its kill shows runs are now faster, so the window shrinks to where it finished.
    // Otherwise most attempts complete, each adding a whole swap's audit and outbox rows, and
    // the integrity check after every attempt slows with the growing file (a CI run spent
    // 20 minutes here on a 1.4 GB database).
    let mut full = full;
    while tally.kills < KILLS {
        assert!(tally.attempts < 4 * KILLS, "{name}: too few kills land: {tally:?}");
        let mut child = spawn(last.in_a == 0);
        tally.attempts += 1;
        let delay = full.mul_f64(1.1 * sequence.next_below(1000) as f64 / 1000.0);
        tokio::time::sleep(delay).await;
        let alive = child.try_wait().unwrap().is_none();
        child.kill().ok();
        let status = child.wait().unwrap();
        let state = after_kill(db, domains.0, domains.1).await;
        let context = format!("{name}, attempt {} (killed: {alive}) after {delay:?}: {state:?}", tally.attempts);
        assert!(
            (state.in_a == size && state.in_b == 0) || (state.in_b == size && state.in_a == 0),
            "{context}: members are not exactly one set"
        );
        assert_eq!(state.members, size, "{context}");
        // At most the run this attempt started, or the one an earlier attempt left if this
        // one was killed before starting its own.
        assert!(state.running.len() <= 1, "{context}: more than one run left running");
        let new_running: Vec<i64> = state.running.iter().copied().filter(|id| !last.running.contains(id)).collect();
        let started = !alive || !new_running.is_empty();
        for id in &last.running {
            let failed = state.interrupted.contains(id);
            assert!(failed || (!started && state.running.contains(id)), "{context}: run {id} was left running");
            assert!(failed || !started, "{context}: run {id} was not failed when the next run started");
        }
        if alive {
            tally.kills += 1;
            tally.left_running += new_running.len();
        } else {
            assert!(status.success(), "{context}: the uninterrupted run failed ({status})");
            tally.completed += 1;
            full = full.min(delay);
        }
        last = state;
    }
    tally
}

fn members_file(domain: &str, base: u128, rows: u128) -> String {
    let mut text = String::with_capacity(rows as usize * 80);
    text.push_str("email,oid,display_name\n");
    for n in 0..rows {
        let oid = uuid::Uuid::from_u128(base + n);
        text.push_str(&format!("dev{n}@{domain},{oid},Developer {n}\n"));
    }
    text
}

fn report(name: &str, tally: &Tally, full: Duration) {
    eprintln!(
        "{name}: {} attempts, {} SIGKILLs landed ({} left a run `running`, each failed on the next start), \
         {} completed before the kill; an uninterrupted run took {full:?}",
        tally.attempts, tally.kills, tally.left_running, tally.completed
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_a_200k_row_import_leaves_one_whole_set_and_no_run_running() {
    const ROWS: u128 = 200_000;
    let project = Project::new(&standard_config("100%"));
    project.write("a.csv", &members_file("a.contoso.com", 0x0a00_0000_0000_4000_8000_0000_0000_0000, ROWS));
    project.write("b.csv", &members_file("b.contoso.com", 0x0b00_0000_0000_4000_8000_0000_0000_0000, ROWS));
    let import = |file: &str| {
        Command::new(env!("CARGO_BIN_EXE_c7sync"))
            .args(["import", file, "--teamspace", "acme", "--mode", "replace"])
            .current_dir(project.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let started = Instant::now();
    assert!(import("a.csv").wait().unwrap().success());
    // A swap removes and adds 200,000 members: the longest run there is.
    let swap_started = Instant::now();
    assert!(import("b.csv").wait().unwrap().success());
    let full = swap_started.elapsed().max(started.elapsed() - swap_started.elapsed());
    let db = project.database_url();
    let tally = crash_series("import", db, ("a.contoso.com", "b.contoso.com"), ROWS as i64, full, |to_a| {
        import(if to_a { "a.csv" } else { "b.csv" })
    })
    .await;
    report("import of 200,000 rows", &tally, full);

    // Converges: a complete run, then the same file again changes nothing.
    project.run(&["import", "a.csv", "--teamspace", "acme", "--mode", "replace"]).expect(0);
    let again = project.run(&["import", "a.csv", "--teamspace", "acme", "--mode", "replace", "--format", "json"]);
    let again = again.expect(0).json();
    assert_eq!((again["added"].as_u64(), again["removed"].as_u64()), (Some(0), Some(0)), "{again}");
    let end = after_kill(db, "a.contoso.com", "b.contoso.com").await;
    assert_eq!((end.in_a, end.running.len()), (ROWS as i64, 0), "{end:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_a_graph_sync_leaves_one_whole_set_and_no_run_running() {
    const USERS: u128 = 30_000;
    let fake = FakeGraph::start(TENANT, GRAPH_CLIENT_ID, "s3cret", 999).await;
    let set = |first: u128, domain: &str| -> Vec<Member> {
        (first..first + USERS)
            .map(|n| {
                let mut user = User::numbered(n);
                user.mail = Some(format!("user{n}@{domain}"));
                Member::User(user)
            })
            .collect()
    };
    let (set_a, set_b) = (set(0, "a.contoso.com"), set(1_000_000, "b.contoso.com"));
    let project = acme_project(&graph_source(&fake, "dev", "C7SYNC_TEST_GRAPH_SECRET", ""));
    let sync = || {
        Command::new(env!("CARGO_BIN_EXE_c7sync"))
            .args(["sync", "--teamspace", "acme", "--allow-mass-removal"])
            .env("C7SYNC_TEST_GRAPH_SECRET", "s3cret")
            .current_dir(project.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    fake.set_group(GRAPH_GROUP, set_a.clone());
    assert!(sync().wait().unwrap().success());
    fake.set_group(GRAPH_GROUP, set_b.clone());
    let started = Instant::now();
    assert!(sync().wait().unwrap().success());
    let full = started.elapsed();
    let db = project.database_url();
    let tally = crash_series("graph sync", db, ("a.contoso.com", "b.contoso.com"), USERS as i64, full, |to_a| {
        fake.set_group(GRAPH_GROUP, if to_a { set_a.clone() } else { set_b.clone() });
        sync()
    })
    .await;
    report(&format!("Graph sync of {USERS} users"), &tally, full);

    fake.set_group(GRAPH_GROUP, set_a.clone());
    let run = |project: &Project| {
        run_binary_with_env(
            project.dir.path(),
            &["sync", "--teamspace", "acme", "--allow-mass-removal", "--format", "json"],
            &[("C7SYNC_TEST_GRAPH_SECRET", "s3cret")],
        )
    };
    run(&project).expect(0);
    let again = run(&project).expect(0).json();
    assert_eq!((again["added"].as_u64(), again["removed"].as_u64()), (Some(0), Some(0)), "{again}");
    let end = after_kill(db, "a.contoso.com", "b.contoso.com").await;
    assert_eq!((end.in_a, end.running.len()), (USERS as i64, 0), "{end:?}");
}
