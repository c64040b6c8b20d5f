//! The Graph source end to end through the library: a fake Graph and token endpoint on
//! 127.0.0.1, the real Graph client (graph-rs-sdk + our page loop), the reconcile core, and a
//! real SQLite file.

use std::time::Duration;

use c7sync::config::{GraphMode, GraphSettings};
use c7sync::domain::MaxRemovals;
use c7sync::reconcile::RunReport;
use c7sync::source::graph::{GraphError, GraphReader, RetryPolicy, Secret};
use c7sync::store::Outcome;
use c7sync::sync::graph::{run_configured, GraphOutcome, GraphState};

use crate::support::fake_graph::{FakeGraph, Fault, Member, User};
use crate::support::*;

const CLIENT_ID: &str = "00000000-0000-0000-0000-0000000000c1";
const SECRET: &str = "s3cret~value";
const GROUP: uuid::Uuid = uuid::Uuid::from_u128(0x9000_0000_0000_4000_8000_0000_0000_0001);
const NESTED: uuid::Uuid = uuid::Uuid::from_u128(0x9000_0000_0000_4000_8000_0000_0000_0002);
const OTHER: uuid::Uuid = uuid::Uuid::from_u128(0x9000_0000_0000_4000_8000_0000_0000_0003);

fn settings(fake: &FakeGraph, groups: &[uuid::Uuid]) -> GraphSettings {
    graph_settings(fake, groups, GraphMode::Full)
}

/// The default policy with short backoffs: waits without `Retry-After` are not under test here.
fn reader(settings: &GraphSettings, secret: &str) -> GraphReader {
    let policy = RetryPolicy { base_backoff: Duration::from_millis(10), ..RetryPolicy::default() };
    GraphReader::new(settings, TENANT.parse().unwrap(), Secret::new(secret.into()), policy).unwrap()
}

/// What a source keeps between runs, reading with [`reader`].
fn state(settings: &GraphSettings, secret: &str) -> GraphState {
    GraphState::with_reader(reader(settings, secret))
}

async fn fake() -> FakeGraph {
    FakeGraph::start(TENANT, CLIENT_ID, SECRET, 3).await
}

fn users(range: std::ops::Range<u128>) -> Vec<Member> {
    range.map(|n| Member::User(User::numbered(n))).collect()
}

/// One sync of `graph:dev` in acme.
async fn sync(db: &TestDb, settings: &GraphSettings, reader: &mut GraphState) -> GraphOutcome {
    run_configured(&db.reconciler, request("acme", "graph:dev"), settings, TENANT.parse().unwrap(), reader)
        .await
        .unwrap()
}

async fn emails(db: &TestDb) -> Vec<String> {
    member_emails(db, "acme").await
}

fn expect_failed(report: &RunReport, needle: &str) {
    assert_eq!(report.outcome, Outcome::Failed, "{report:?}");
    let reason = report.reason.as_deref().unwrap_or_default();
    assert!(reason.contains(needle), "reason {reason:?} lacks {needle:?}");
}

#[tokio::test]
async fn transitive_users_of_a_group_become_members_over_several_pages() {
    let fake = fake().await;
    let mut no_mail = User::numbered(3);
    no_mail.mail = None;
    let mut disabled = User::numbered(4);
    disabled.enabled = false;
    let mut guest = User::numbered(5);
    guest.guest = true;
    guest.mail = Some("guest@fabrikam.com".into());
    let mut members = users(0..3);
    members.extend([
        Member::User(no_mail),
        Member::User(disabled),
        Member::User(guest),
        Member::Group(NESTED),
        Member::Device(uuid::Uuid::from_u128(77)),
        Member::ServicePrincipal(uuid::Uuid::from_u128(78)),
    ]);
    fake.set_group(GROUP, members);
    // The nested group repeats user 0 and adds users 10 and 11.
    fake.set_group(NESTED, users(10..12).into_iter().chain(users(0..1)).collect());
    let db = temp_db().await;
    let settings = settings(&fake, &[GROUP]);

    let outcome = sync(&db, &settings, &mut state(&settings, SECRET)).await;
    assert_eq!(outcome.report.outcome, Outcome::Applied, "{:?}", outcome.report);
    assert_eq!(outcome.report.counts.added, 7);
    assert_eq!(
        emails(&db).await,
        [
            "guest@fabrikam.com",
            "user0@contoso.com",
            "user10@contoso.com",
            "user11@contoso.com",
            "user1@contoso.com",
            "user2@contoso.com",
            "user3@contoso.onmicrosoft.com",
        ]
    );
    let listing = outcome.listing.unwrap();
    // 6 users + nested group + device + service principal + 2 nested users = 11 objects, 3 a page.
    assert_eq!((listing.objects, listing.pages, listing.not_users, listing.disabled), (11, 4, 3, 1));
    let first = fake.counters(|c| c.requests[0].clone());
    assert!(first.contains("%24top=999") && first.contains("userPrincipalName"), "{first}");
    assert_eq!(fake.counters(|c| c.scopes.iter().cloned().collect::<Vec<_>>()), [format!("{}/.default", fake.url())]);
}

#[tokio::test]
async fn several_groups_are_listed_as_their_union() {
    let fake = fake().await;
    fake.set_group(GROUP, users(0..5));
    fake.set_group(OTHER, users(3..9));
    let db = temp_db().await;
    let settings = settings(&fake, &[GROUP, OTHER]);
    let outcome = sync(&db, &settings, &mut state(&settings, SECRET)).await;
    assert_eq!(outcome.report.counts.added, 9);
    assert_eq!(outcome.listing.unwrap().duplicates, 2);
}

#[tokio::test]
async fn a_throttled_later_page_is_retried_after_retry_after() {
    let fake = fake().await;
    fake.set_group(GROUP, users(0..10));
    // Page 3 is where graph-rs-sdk's own pager would silently stop.
    fake.fault_once(GROUP, 3, vec![Fault::Throttle { retry_after: 1 }]);
    fake.fault_once(GROUP, 2, vec![Fault::Unavailable { retry_after: None }]);
    let db = temp_db().await;
    let settings = settings(&fake, &[GROUP]);
    let started = std::time::Instant::now();
    let outcome = sync(&db, &settings, &mut state(&settings, SECRET)).await;
    assert_eq!(outcome.report.counts.added, 10, "{:?}", outcome.report);
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 was not honoured");
    assert_eq!((fake.requests_for(GROUP, 2), fake.requests_for(GROUP, 3)), (2, 2));
}

#[tokio::test]
async fn a_page_that_fails_for_good_fails_the_run_and_changes_nothing() {
    let fake = fake().await;
    fake.set_group(GROUP, users(0..10));
    let db = temp_db().await;
    let settings = settings(&fake, &[GROUP]);
    let mut reader = state(&settings, SECRET);
    sync(&db, &settings, &mut reader).await;

    // Users 0..5 leave the group, but page 2 of the new listing cannot be read.
    fake.set_group(GROUP, users(5..10));
    fake.fault_always(GROUP, 2, Fault::Unavailable { retry_after: Some(0) });
    let before = fingerprint(db.store()).await;
    let outcome = sync(&db, &settings, &mut reader).await;
    expect_failed(&outcome.report, &format!("page 2 of group {GROUP}"));
    expect_failed(&outcome.report, "gave up after 6 tries");
    assert_eq!(fake.requests_for(GROUP, 2), 1 + 6);
    let after = fingerprint(db.store()).await;
    let changed: Vec<_> = after.iter().filter(|row| !before.contains(row)).collect();
    assert!(changed.iter().all(|row| row.starts_with(&outcome.report.run_id.to_string())), "{changed:?}");

    // Once the page can be read, the removals happen.
    fake.clear_faults();
    let outcome = sync(&db, &settings, &mut reader).await;
    assert_eq!((outcome.report.counts.removed, outcome.report.counts.unchanged), (5, 5), "{:?}", outcome.report);
}

#[tokio::test]
async fn a_malformed_page_is_retried_then_fails_the_run() {
    let fake = fake().await;
    fake.set_group(GROUP, users(0..7));
    fake.fault_once(GROUP, 2, vec![Fault::Malformed]);
    let db = temp_db().await;
    let settings = settings(&fake, &[GROUP]);
    let mut reader = state(&settings, SECRET);
    assert_eq!(sync(&db, &settings, &mut reader).await.report.counts.added, 7);

    fake.fault_always(GROUP, 3, Fault::Malformed);
    let outcome = sync(&db, &settings, &mut reader).await;
    expect_failed(&outcome.report, "not a Graph collection page");
}

#[tokio::test]
async fn an_expired_token_is_replaced_once() {
    let fake = fake().await;
    fake.set_group(GROUP, users(0..9));
    fake.fault_once(GROUP, 2, vec![Fault::ExpireTokens]);
    let db = temp_db().await;
    let settings = settings(&fake, &[GROUP]);
    let mut reader = state(&settings, SECRET);
    let outcome = sync(&db, &settings, &mut reader).await;
    assert_eq!(outcome.report.counts.added, 9, "{:?}", outcome.report);
    assert_eq!(fake.counters(|c| c.tokens_issued), 2);

    // The next run reuses the cached token.
    sync(&db, &settings, &mut reader).await;
    assert_eq!(fake.counters(|c| c.tokens_issued), 2);
}

#[tokio::test]
async fn a_token_rejected_twice_fails_the_run() {
    let fake = fake().await;
    fake.set_group(GROUP, users(0..2));
    fake.fault_once(GROUP, 1, vec![Fault::ExpireTokens, Fault::ExpireTokens]);
    let db = temp_db().await;
    let settings = settings(&fake, &[GROUP]);
    let outcome = sync(&db, &settings, &mut state(&settings, SECRET)).await;
    expect_failed(&outcome.report, "rejected a freshly acquired token");
}

#[tokio::test]
async fn a_missing_group_or_permission_says_which() {
    let fake = fake().await;
    fake.set_group(GROUP, users(0..2));
    fake.forbid(OTHER);
    let db = temp_db().await;

    let missing = uuid::Uuid::from_u128(404);
    let settings_missing = settings(&fake, &[GROUP, missing]);
    let outcome = sync(&db, &settings_missing, &mut state(&settings_missing, SECRET)).await;
    expect_failed(&outcome.report, &format!("group {missing} does not exist in tenant {TENANT}"));
    assert_eq!(count(db.store(), "members").await, 0, "the readable group must not be applied alone");

    fake.set_group(OTHER, users(5..6));
    let settings_forbidden = settings(&fake, &[OTHER]);
    let outcome = sync(&db, &settings_forbidden, &mut state(&settings_forbidden, SECRET)).await;
    expect_failed(&outcome.report, "GroupMember.Read.All and User.Read.All");
    expect_failed(&outcome.report, &OTHER.to_string());
}

#[tokio::test]
async fn a_wrong_secret_fails_with_the_authority_message() {
    let fake = fake().await;
    fake.set_group(GROUP, users(0..2));
    let db = temp_db().await;
    let settings = settings(&fake, &[GROUP]);
    let outcome = sync(&db, &settings, &mut state(&settings, "wrong")).await;
    expect_failed(&outcome.report, "AADSTS7000215: Invalid client secret provided.");
    assert!(!outcome.report.reason.unwrap().contains("wrong"), "the secret must not appear in the reason");
}

#[tokio::test]
async fn a_missing_secret_variable_fails_the_run_naming_it() {
    let fake = fake().await;
    let db = temp_db().await;
    let mut settings = settings(&fake, &[GROUP]);
    settings.client_secret_env = "C7SYNC_TEST_SECRET_THAT_IS_NEVER_SET".into();
    let outcome = sync(&db, &settings, &mut GraphState::default()).await;
    expect_failed(&outcome.report, "environment variable C7SYNC_TEST_SECRET_THAT_IS_NEVER_SET");
    assert_eq!(fake.counters(|c| c.tokens_issued + c.tokens_refused), 0);
}

#[tokio::test]
async fn a_next_link_to_another_host_is_refused() {
    let fake = fake().await;
    fake.set_group(GROUP, users(0..5));
    fake.send_next_links_to("attacker.example:443");
    let db = temp_db().await;
    let settings = settings(&fake, &[GROUP]);
    let outcome = sync(&db, &settings, &mut state(&settings, SECRET)).await;
    expect_failed(&outcome.report, "refusing to send the token there");
}

#[tokio::test]
async fn guards_hold_an_emptied_group_and_a_mass_removal() {
    let fake = fake().await;
    fake.set_group(GROUP, users(0..10));
    let db = temp_db_with(MaxRemovals::Count(3)).await;
    let settings = settings(&fake, &[GROUP]);
    let mut reader = state(&settings, SECRET);
    sync(&db, &settings, &mut reader).await;

    fake.set_group(GROUP, Vec::new());
    let outcome = sync(&db, &settings, &mut reader).await;
    assert_eq!(outcome.report.outcome, Outcome::Aborted);
    assert!(outcome.report.reason.unwrap().contains("empty"));

    fake.set_group(GROUP, users(0..5));
    let outcome = sync(&db, &settings, &mut reader).await;
    assert_eq!(outcome.report.outcome, Outcome::Aborted);
    assert_eq!(count(db.store(), "members").await, 10);

    let approved = db.reconciler.approve(outcome.report.run_id).await.unwrap();
    assert_eq!((approved.outcome, approved.counts.removed), (Outcome::Applied, 5));
}

#[tokio::test]
async fn an_unchanged_group_resyncs_as_a_no_op() {
    let fake = fake().await;
    fake.set_group(GROUP, users(0..8));
    let db = temp_db().await;
    let settings = settings(&fake, &[GROUP]);
    let mut reader = state(&settings, SECRET);
    sync(&db, &settings, &mut reader).await;
    let before = count(db.store(), "audit_events").await;
    let again = sync(&db, &settings, &mut reader).await;
    assert_eq!((again.report.counts.added, again.report.counts.unchanged), (0, 8));
    assert_eq!(count(db.store(), "audit_events").await, before);
}

#[tokio::test]
async fn reader_errors_are_typed() {
    // The listing error itself (not only the run's reason) names the group and page.
    let fake = fake().await;
    fake.set_group(GROUP, users(0..4));
    fake.fault_always(GROUP, 2, Fault::Status(400));
    let settings = settings(&fake, &[GROUP]);
    let error = reader(&settings, SECRET).list().await.unwrap_err();
    assert!(matches!(error, GraphError::Page { page: 2, .. }), "{error:?}");
}

#[tokio::test]
async fn a_slow_page_times_out_and_is_retried() {
    let fake = fake().await;
    fake.set_group(GROUP, users(0..6));
    fake.fault_once(GROUP, 2, vec![Fault::Delay(Duration::from_secs(3))]);
    let db = temp_db().await;
    let settings = settings(&fake, &[GROUP]);
    let policy = RetryPolicy {
        base_backoff: Duration::from_millis(10),
        request_timeout: Duration::from_millis(500),
        ..RetryPolicy::default()
    };
    let reader = GraphReader::new(&settings, TENANT.parse().unwrap(), Secret::new(SECRET.into()), policy).unwrap();
    let outcome = sync(&db, &settings, &mut GraphState::with_reader(reader)).await;
    assert_eq!(outcome.report.counts.added, 6, "{:?}", outcome.report);
    assert_eq!(fake.requests_for(GROUP, 2), 2);
}
