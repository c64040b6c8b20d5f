//! Delta mode of the Graph source end to end through the library: the fake Graph's delta
//! queries, the real client, the membership graph saved in the store, and the reconcile core.

use std::time::Duration;

use c7sync::config::{GraphMode, GraphSettings};
use c7sync::domain::MaxRemovals;
use c7sync::source::graph::{GraphReader, RetryPolicy, Secret};
use c7sync::store::Outcome;
use c7sync::sync::graph::{run_configured, GraphOutcome, GraphState};

use crate::support::fake_graph::{FakeGraph, Fault, Member, User};
use crate::support::*;

const CLIENT_ID: &str = "00000000-0000-0000-0000-0000000000c1";
const SECRET: &str = "s3cret~value";
const ROOT: uuid::Uuid = uuid::Uuid::from_u128(0x9000_0000_0000_4000_8000_0000_0000_0001);
const NESTED: uuid::Uuid = uuid::Uuid::from_u128(0x9000_0000_0000_4000_8000_0000_0000_0002);
const DEEPER: uuid::Uuid = uuid::Uuid::from_u128(0x9000_0000_0000_4000_8000_0000_0000_0003);

fn settings(fake: &FakeGraph) -> GraphSettings {
    graph_settings(fake, &[ROOT], GraphMode::Delta)
}

fn state(settings: &GraphSettings) -> GraphState {
    let policy = RetryPolicy { base_backoff: Duration::from_millis(10), ..RetryPolicy::default() };
    GraphState::with_reader(
        GraphReader::new(settings, TENANT.parse().unwrap(), Secret::new(SECRET.into()), policy).unwrap(),
    )
}

/// Three member entries a page, so rounds span pages.
async fn fake() -> FakeGraph {
    FakeGraph::start(TENANT, CLIENT_ID, SECRET, 3).await
}

fn users(range: std::ops::Range<u128>) -> Vec<Member> {
    range.map(|n| Member::User(User::numbered(n))).collect()
}

/// A tick of `graph:dev` in acme, and its `delta` run details.
struct Tick {
    outcome: GraphOutcome,
    delta: serde_json::Value,
}

impl Tick {
    fn kind(&self) -> &str {
        self.delta["kind"].as_str().unwrap_or("none")
    }
    fn requests(&self) -> u64 {
        self.delta["requests"].as_u64().unwrap()
    }
    fn counts(&self) -> (u64, u64, u64) {
        let c = &self.outcome.report.counts;
        (c.added, c.removed, c.updated)
    }
}

async fn tick(db: &TestDb, settings: &GraphSettings, state: &mut GraphState) -> Tick {
    let outcome =
        run_configured(&db.reconciler, request("acme", "graph:dev"), settings, TENANT.parse().unwrap(), state)
            .await
            .unwrap();
    let (run, _) = db.store().run(outcome.report.run_id).await.unwrap();
    let delta = run.details.unwrap_or_default()["delta"].clone();
    Tick { outcome, delta }
}

async fn emails(db: &TestDb) -> Vec<String> {
    member_emails(db, "acme").await
}

fn mails(numbers: &[u128]) -> Vec<String> {
    let mut mails: Vec<String> = numbers.iter().map(|n| format!("user{n}@contoso.com")).collect();
    mails.sort();
    mails
}

#[tokio::test]
async fn a_first_run_lists_everything_then_ticks_follow_the_delta_links() {
    let fake = fake().await;
    fake.set_group(ROOT, users(0..7).into_iter().chain([Member::Group(NESTED)]).collect());
    fake.set_group(NESTED, users(10..12));
    let db = temp_db_with(MaxRemovals::Percent(100.0)).await;
    let settings = settings(&fake);
    let mut state = state(&settings);

    let first = tick(&db, &settings, &mut state).await;
    assert_eq!(first.outcome.report.outcome, Outcome::Applied, "{:?}", first.outcome.report);
    assert_eq!(first.kind(), "full");
    assert!(first.delta["full_reason"].as_str().unwrap().contains("first run"), "{}", first.delta);
    assert_eq!(first.counts(), (9, 0, 0));
    assert_eq!(first.delta["groups_tracked"], 2);

    let before = fake.request_count();
    let quiet = tick(&db, &settings, &mut state).await;
    assert_eq!((quiet.kind(), quiet.counts()), ("delta", (0, 0, 0)));
    // One groups/delta query (both groups) and one users/delta round, one page each.
    assert_eq!(quiet.requests(), 2, "{}", quiet.delta);
    assert_eq!(fake.request_count() - before, 2);
    assert_eq!(quiet.outcome.report.counts.unchanged, 9);

    let mut root = users(1..7);
    root.extend([Member::Group(NESTED), Member::User(User::numbered(100))]);
    fake.set_group(ROOT, root);
    let changed = tick(&db, &settings, &mut state).await;
    assert_eq!((changed.kind(), changed.counts()), ("delta", (1, 1, 0)));
    assert_eq!(changed.delta["member_changes"], 2);
    assert_eq!(changed.delta["users_looked_up"], 1, "the new user's attributes are looked up");
    assert_eq!(emails(&db).await, mails(&[1, 2, 3, 4, 5, 6, 10, 11, 100]));
}

#[tokio::test]
async fn a_process_without_the_state_in_memory_continues_from_the_saved_links() {
    let fake = fake().await;
    fake.set_group(ROOT, users(0..4));
    let db = temp_db_with(MaxRemovals::Percent(100.0)).await;
    let settings = settings(&fake);
    tick(&db, &settings, &mut state(&settings)).await;
    fake.set_group(ROOT, users(1..4));
    // A new state: another replica, or a restart.
    let next = tick(&db, &settings, &mut state(&settings)).await;
    assert_eq!((next.kind(), next.counts()), ("delta", (0, 1, 0)), "{:?} {}", next.outcome.report, next.delta);
    assert_eq!(emails(&db).await, mails(&[1, 2, 3]));
}

#[tokio::test]
async fn nested_groups_joining_and_leaving_start_and_stop_being_tracked() {
    let fake = fake().await;
    // User 1 is reachable twice: directly and through NESTED.
    fake.set_group(ROOT, users(0..2).into_iter().chain([Member::Group(NESTED)]).collect());
    fake.set_group(NESTED, users(1..3));
    fake.set_group(DEEPER, users(20..22));
    let db = temp_db_with(MaxRemovals::Percent(100.0)).await;
    let settings = settings(&fake);
    let mut state = state(&settings);
    tick(&db, &settings, &mut state).await;
    assert_eq!(emails(&db).await, mails(&[0, 1, 2]));

    fake.set_group(NESTED, users(1..3).into_iter().chain([Member::Group(DEEPER)]).collect());
    let joined = tick(&db, &settings, &mut state).await;
    assert_eq!((joined.kind(), joined.counts()), ("delta", (2, 0, 0)));
    assert_eq!(joined.delta["groups_joined"], 1);
    assert_eq!(joined.delta["groups_tracked"], 3);
    assert_eq!(emails(&db).await, mails(&[0, 1, 2, 20, 21]));

    // DEEPER's own changes are followed once it is tracked.
    fake.set_group(DEEPER, users(20..23));
    assert_eq!(tick(&db, &settings, &mut state).await.counts(), (1, 0, 0));

    // NESTED leaves: DEEPER goes with it; user 1 stays, still a direct member.
    fake.set_group(ROOT, users(0..2));
    let left = tick(&db, &settings, &mut state).await;
    assert_eq!(left.delta["groups_left"], 2, "{}", left.delta);
    assert_eq!(left.delta["groups_tracked"], 1);
    assert_eq!(emails(&db).await, mails(&[0, 1]));

    // Changes to groups no longer in the tree change nothing.
    fake.set_group(DEEPER, users(20..25));
    assert_eq!(tick(&db, &settings, &mut state).await.counts(), (0, 0, 0));
    // The second path gone too: user 1 leaves.
    fake.set_group(ROOT, users(0..1));
    assert_eq!(tick(&db, &settings, &mut state).await.counts(), (0, 1, 0));
}

#[tokio::test]
async fn users_becoming_disabled_renamed_or_deleted_follow_within_a_tick() {
    let fake = fake().await;
    fake.set_group(ROOT, users(0..5));
    let db = temp_db_with(MaxRemovals::Percent(100.0)).await;
    let settings = settings(&fake);
    let mut state = state(&settings);
    tick(&db, &settings, &mut state).await;

    let mut disabled = User::numbered(0);
    disabled.enabled = false;
    fake.set_user(disabled);
    let mut renamed = User::numbered(1);
    renamed.mail = Some("ada.renamed@contoso.com".into());
    fake.set_user(renamed);
    fake.delete_user(User::numbered(2).id);
    let changed = tick(&db, &settings, &mut state).await;
    assert_eq!((changed.kind(), changed.counts()), ("delta", (0, 2, 1)), "{}", changed.delta);
    assert_eq!(changed.delta["user_changes"], 3, "{}", changed.delta);
    let mut expected = mails(&[3, 4]);
    expected.insert(0, "ada.renamed@contoso.com".into());
    assert_eq!(emails(&db).await, expected);

    // Enabled again: the attributes kept for the disabled user are enough to restore it.
    fake.set_user(User::numbered(0));
    assert_eq!(tick(&db, &settings, &mut state).await.counts(), (1, 0, 0));
}

#[tokio::test]
async fn an_expired_delta_link_leads_to_a_full_listing_without_wrongful_removals() {
    let fake = fake().await;
    fake.set_group(ROOT, users(0..8));
    let db = temp_db_with(MaxRemovals::Percent(100.0)).await;
    let settings = settings(&fake);
    let mut state = state(&settings);
    tick(&db, &settings, &mut state).await;

    fake.expire_delta_tokens();
    fake.set_group(ROOT, users(1..8));
    let relisted = tick(&db, &settings, &mut state).await;
    assert_eq!(relisted.outcome.report.outcome, Outcome::Applied, "{:?}", relisted.outcome.report);
    assert_eq!(relisted.kind(), "full");
    let reason = relisted.delta["full_reason"].as_str().unwrap();
    assert!(reason.contains("410") && reason.contains("syncStateNotFound"), "{reason}");
    assert_eq!(relisted.counts(), (0, 1, 0), "only the member really gone is removed");
    assert_eq!(emails(&db).await, mails(&[1, 2, 3, 4, 5, 6, 7]));
    // The new links work.
    assert_eq!(tick(&db, &settings, &mut state).await.kind(), "delta");
}

#[tokio::test]
async fn duplicates_across_pages_and_replayed_removals_are_harmless() {
    let fake = fake().await;
    // User 9 was a member once: a first round replays its removal.
    fake.set_group(ROOT, users(0..5).into_iter().chain(users(9..10)).collect());
    fake.set_group(ROOT, users(0..5));
    fake.duplicate_delta_entries(true);
    let db = temp_db_with(MaxRemovals::Percent(100.0)).await;
    let settings = settings(&fake);
    let mut state = state(&settings);
    let first = tick(&db, &settings, &mut state).await;
    assert_eq!(first.counts(), (5, 0, 0));
    assert!(first.delta["pages"].as_u64().unwrap() >= 4, "11 entries, 3 a page: {}", first.delta);

    fake.set_group(ROOT, users(1..5).into_iter().chain(users(30..32)).collect());
    let changed = tick(&db, &settings, &mut state).await;
    assert_eq!(changed.counts(), (2, 1, 0));
    assert_eq!(changed.delta["member_changes"], 3, "each change counted once: {}", changed.delta);
    assert_eq!(emails(&db).await, mails(&[1, 2, 3, 4, 30, 31]));
}

#[tokio::test]
async fn a_member_graph_cannot_show_yet_is_retried_from_the_same_links() {
    let fake = fake().await;
    fake.set_group(ROOT, users(0..3));
    let db = temp_db_with(MaxRemovals::Percent(100.0)).await;
    let settings = settings(&fake);
    let mut state = state(&settings);
    tick(&db, &settings, &mut state).await;

    let late = User::numbered(50);
    fake.hide_from_lookups(late.id, true);
    fake.set_group(ROOT, users(1..3).into_iter().chain([Member::User(late.clone())]).collect());
    let delayed = tick(&db, &settings, &mut state).await;
    assert_eq!(delayed.outcome.report.outcome, Outcome::Failed);
    let reason = delayed.outcome.report.reason.clone().unwrap();
    assert!(reason.contains("replication delay"), "{reason}");
    assert_eq!(emails(&db).await, mails(&[0, 1, 2]), "nothing changed, the removal included");

    fake.hide_from_lookups(late.id, false);
    let caught_up = tick(&db, &settings, &mut state).await;
    assert_eq!((caught_up.kind(), caught_up.counts()), ("delta", (1, 1, 0)), "{}", caught_up.delta);
    assert_eq!(emails(&db).await, mails(&[1, 2, 50]));
}

#[tokio::test]
async fn throttled_delta_requests_are_retried_and_a_round_that_cannot_be_read_changes_nothing() {
    let fake = fake().await;
    fake.set_group(ROOT, users(0..4));
    let db = temp_db_with(MaxRemovals::Percent(100.0)).await;
    let settings = settings(&fake);
    let mut state = state(&settings);
    tick(&db, &settings, &mut state).await;

    fake.set_group(ROOT, users(1..4));
    fake.fault_delta_once(vec![Fault::Throttle { retry_after: 0 }, Fault::Unavailable { retry_after: Some(0) }]);
    let throttled = tick(&db, &settings, &mut state).await;
    assert_eq!(throttled.counts(), (0, 1, 0));
    assert_eq!(throttled.requests(), 4, "two refused, then both rounds: {}", throttled.delta);

    fake.set_group(ROOT, users(2..4));
    fake.fault_delta_once(vec![Fault::Status(400)]);
    let failed = tick(&db, &settings, &mut state).await;
    assert_eq!(failed.outcome.report.outcome, Outcome::Failed);
    assert!(failed.outcome.report.reason.as_deref().unwrap().contains("members delta query"));
    assert_eq!(emails(&db).await, mails(&[1, 2, 3]));
    // The link was not moved on: the next tick sees the removal.
    let next = tick(&db, &settings, &mut state).await;
    assert_eq!((next.kind(), next.counts()), ("delta", (0, 1, 0)));
}

#[tokio::test]
async fn the_guard_and_dry_runs_hold_for_delta_ticks() {
    let fake = fake().await;
    fake.set_group(ROOT, users(0..10));
    let db = temp_db_with(MaxRemovals::Percent(20.0)).await;
    let settings = settings(&fake);
    let mut state = state(&settings);
    tick(&db, &settings, &mut state).await;

    fake.set_group(ROOT, users(5..10));
    let held = tick(&db, &settings, &mut state).await;
    assert_eq!(held.outcome.report.outcome, Outcome::Aborted, "{:?}", held.outcome.report);
    assert_eq!(emails(&db).await.len(), 10);
    // Still held on the next tick: the saved graph says the same.
    assert_eq!(tick(&db, &settings, &mut state).await.outcome.report.outcome, Outcome::Aborted);

    fake.set_group(ROOT, users(0..10));
    fake.set_group(ROOT, users(0..9));
    let dry = run_configured(
        &db.reconciler,
        request("acme", "graph:dev")
            .with_options(c7sync::reconcile::RunOptions { dry_run: true, ..Default::default() }),
        &settings,
        TENANT.parse().unwrap(),
        &mut state,
    )
    .await
    .unwrap();
    assert_eq!((dry.report.outcome, dry.report.counts.removed), (Outcome::DryRun, 1));
    // The dry run saved no link: the real tick sees the same change.
    assert_eq!(tick(&db, &settings, &mut state).await.counts(), (0, 1, 0));
}

#[tokio::test]
async fn a_changed_group_list_or_the_periodic_reconcile_lists_everything_again() {
    let fake = fake().await;
    fake.set_group(ROOT, users(0..3));
    fake.set_group(NESTED, users(10..12));
    let db = temp_db_with(MaxRemovals::Percent(100.0)).await;
    let mut settings = settings(&fake);
    let mut state = state(&settings);
    tick(&db, &settings, &mut state).await;

    // A new configuration: the daemon makes a new client for it.
    settings.groups = vec![ROOT, NESTED];
    let mut state = self::state(&settings);
    let regrouped = tick(&db, &settings, &mut state).await;
    assert_eq!((regrouped.kind(), regrouped.counts()), ("full", (2, 0, 0)));
    assert!(regrouped.delta["full_reason"].as_str().unwrap().contains("groups changed"));

    settings.full_every = Duration::from_secs(1);
    // Ticks until one is a full listing: the periodic reconcile, at most a second away.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let periodic = loop {
        let next = tick(&db, &settings, &mut state).await;
        if next.kind() == "full" || std::time::Instant::now() > deadline {
            break next;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(periodic.kind(), "full");
    assert!(periodic.delta["full_reason"].as_str().unwrap().contains("periodic"), "{}", periodic.delta);
    assert_eq!(periodic.counts(), (0, 0, 0));
}
