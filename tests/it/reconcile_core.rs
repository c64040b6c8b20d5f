//! DESIGN §2 invariants through the reconcile core on a real SQLite file.

use c7sync::domain::{MaxRemovals, RunId};
use c7sync::plan::{Delta, Desired};
use c7sync::reconcile::ReconcileError;
use c7sync::store::{DeliveryStatus, EventFilter, Outcome};

use crate::support::*;

fn snapshot(range: std::ops::Range<u128>) -> Desired {
    Desired::Snapshot(claims(range))
}

#[tokio::test]
async fn a_snapshot_adds_members_with_claims_and_audit_rows_whose_events_are_pending() {
    let db = temp_db().await;
    let report = db.reconciler.run(&request("acme", "csv:hr"), snapshot(0..10)).await.unwrap();
    assert_eq!(report.outcome, Outcome::Applied);
    assert_eq!((report.counts.added, report.counts.removed), (10, 0));

    let teamspace = db.store().teamspace("acme").await.unwrap();
    let members = db.store().list_members(teamspace.id).await.unwrap();
    assert_eq!(members.len(), 10);
    assert!(members.iter().all(|m| m.sources == ["csv:hr"] && m.tenant_id == TENANT));
    assert_eq!(count(db.store(), "claims").await, 10);
    assert_eq!(count(db.store(), "audit_events").await, 10);
    // Delivery state is recorded when delivery tries an event: the run writes none.
    assert_eq!(count(db.store(), "outbox").await, 0);
    let filter = EventFilter {
        teamspace_id: Some(teamspace.id),
        status: Some(DeliveryStatus::Pending),
        limit: 100,
        ..EventFilter::default()
    };
    let pending = db.store().list_events(&filter).await.unwrap();
    assert_eq!(pending.len(), 10, "every audit row of the run is a pending event");
    assert!(pending.iter().all(|e| e.event.run_id == report.run_id.0 && e.attempts == 0 && e.last_error.is_none()));
    assert!(pending.windows(2).all(|w| w[0].event.id < w[1].event.id), "oldest first");
    assert_eq!(db.store().outbox_backlog().await.unwrap().0, 10);
}

#[tokio::test]
async fn the_same_input_twice_changes_nothing_the_second_time() {
    let db = temp_db().await;
    db.reconciler.run(&request("acme", "csv:hr"), snapshot(0..50)).await.unwrap();
    let before = fingerprint(db.store()).await;
    let again = db.reconciler.run(&request("acme", "csv:hr"), snapshot(0..50)).await.unwrap();
    assert_eq!(again.outcome, Outcome::Applied);
    assert_eq!((again.counts.added, again.counts.removed, again.counts.updated, again.counts.unchanged), (0, 0, 0, 50));
    let after = fingerprint(db.store()).await;
    let changed: Vec<_> = after.iter().filter(|row| !before.contains(row)).collect();
    // Only the new run row and the teamspace version move; no member, claim, audit or outbox row.
    assert!(
        changed.iter().all(|row| row.starts_with(&again.run_id.to_string()) || row.starts_with("acme v")),
        "{changed:?}"
    );
}

#[tokio::test]
async fn a_source_never_removes_members_another_source_claims() {
    let db = temp_db_with(MaxRemovals::Count(100)).await;
    db.reconciler.run(&request("acme", "graph:dev"), snapshot(0..10)).await.unwrap();
    // Manual also claims 0..3 and adds 100.
    let manual: Vec<Delta> = [0, 1, 2, 100].into_iter().map(|n| Delta::Upsert(claim(n))).collect();
    db.reconciler.run(&request("acme", "manual"), Desired::Deltas(manual)).await.unwrap();

    // The group is emptied except for 5..10: graph drops its claims on 0..5.
    let report = db.reconciler.run(&request("acme", "graph:dev"), snapshot(5..10)).await.unwrap();
    assert_eq!(report.counts.removed, 2, "only 3 and 4 had no other claim");
    let teamspace = db.store().teamspace("acme").await.unwrap();
    let members = db.store().list_members(teamspace.id).await.unwrap();
    let mut oids: Vec<_> = members.iter().map(|m| m.oid).collect();
    oids.sort();
    let expected: Vec<_> = [0, 1, 2, 5, 6, 7, 8, 9, 100].into_iter().map(oid).collect();
    assert_eq!(oids, expected);
    assert!(members.iter().all(|m| !m.sources.is_empty()), "every member keeps a claim");
    assert_eq!(db.store().check_integrity().await.unwrap(), Vec::<String>::new());
}

#[tokio::test]
async fn a_failure_mid_apply_leaves_the_database_unchanged() {
    let db = temp_db().await;
    db.reconciler.run(&request("acme", "csv:hr"), snapshot(0..5)).await.unwrap();
    let before = fingerprint(db.store()).await;
    // The last member's audit row is the last row of a transaction that has already added
    // members, claims, a run and the other audit rows; make it fail.
    let client = inspect(db.store()).await;
    let last = oid(1999).to_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>();
    let failing = if on_postgres() {
        sqlx::query(
            "CREATE FUNCTION fail_last() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$",
        )
        .execute(&client)
        .await
        .unwrap();
        format!(
            "CREATE TRIGGER fail_last BEFORE INSERT ON audit_events FOR EACH ROW \
             WHEN (NEW.oid = '\\x{last}'::bytea) EXECUTE FUNCTION fail_last()"
        )
    } else {
        format!(
            "CREATE TRIGGER fail_last BEFORE INSERT ON audit_events WHEN NEW.oid = x'{last}' \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        )
    };
    sqlx::query(&failing).execute(&client).await.unwrap();
    let error = db.reconciler.run(&request("acme", "csv:hr"), snapshot(0..2000)).await.unwrap_err();
    assert!(error.to_string().contains("injected failure"), "{error}");
    assert_eq!(fingerprint(db.store()).await, before);
}

#[tokio::test]
async fn the_mass_removal_guard_holds_the_plan_and_approve_applies_it() {
    let db = temp_db().await; // 20%
    db.reconciler.run(&request("acme", "csv:hr"), snapshot(0..100)).await.unwrap();
    let before = fingerprint(db.store()).await;

    let held = db.reconciler.run(&request("acme", "csv:hr"), snapshot(0..70)).await.unwrap();
    assert_eq!(held.outcome, Outcome::Aborted);
    assert!(held.reason.as_deref().unwrap().contains("would remove 30 of 100"), "{:?}", held.reason);
    let (planned, total) = db.store().planned_changes(held.run_id, 1000).await.unwrap();
    assert_eq!(total, planned.len() as u64);
    assert_eq!(planned.iter().filter(|c| c.member == c7sync::store::MemberEffect::Remove).count(), 30);
    let after_hold = fingerprint(db.store()).await;
    assert_eq!(
        after_hold.iter().filter(|r| !before.contains(r)).count(),
        2,
        "only the run row and its plan count are new"
    );

    let approved = db.reconciler.approve(held.run_id).await.unwrap();
    assert_eq!(approved.outcome, Outcome::Applied);
    assert_eq!(approved.counts.removed, 30);
    let teamspace = db.store().teamspace("acme").await.unwrap();
    assert_eq!(db.store().count_members(teamspace.id).await.unwrap(), 70);
    let (run, _) = db.store().run(held.run_id).await.unwrap();
    assert_eq!(run.approved_by_run_id, Some(approved.run_id));

    let twice = db.reconciler.approve(held.run_id).await.unwrap_err();
    assert!(twice.to_string().contains("already approved"), "{twice}");
}

#[tokio::test]
async fn the_override_flag_lets_a_mass_removal_through() {
    let db = temp_db().await;
    db.reconciler.run(&request("acme", "csv:hr"), snapshot(0..10)).await.unwrap();
    let mut forced = request("acme", "csv:hr");
    forced.options.allow_mass_removal = true;
    let report = db.reconciler.run(&forced, snapshot(0..2)).await.unwrap();
    assert_eq!((report.outcome, report.counts.removed), (Outcome::Applied, 8));
}

#[tokio::test]
async fn approving_a_stale_plan_is_refused() {
    let db = temp_db().await;
    db.reconciler.run(&request("acme", "csv:hr"), snapshot(0..10)).await.unwrap();
    let held = db.reconciler.run(&request("acme", "csv:hr"), snapshot(0..1)).await.unwrap();
    assert_eq!(held.outcome, Outcome::Aborted);
    // The source changes its claims after the plan was held.
    db.reconciler.run(&request("acme", "csv:hr"), snapshot(0..11)).await.unwrap();
    let before = fingerprint(db.store()).await;
    let error = db.reconciler.approve(held.run_id).await.unwrap_err();
    assert!(matches!(error, ReconcileError::Refused(_)));
    assert!(error.to_string().contains("changed since run"), "{error}");
    assert_eq!(fingerprint(db.store()).await, before);

    let applied = db.reconciler.approve(RunId(1)).await.unwrap_err();
    assert!(applied.to_string().contains("only runs held back"), "{applied}");
}

#[tokio::test]
async fn an_empty_snapshot_is_held_while_the_source_has_claims() {
    let db = temp_db_with(MaxRemovals::Count(1000)).await;
    db.reconciler.run(&request("acme", "csv:hr"), snapshot(0..3)).await.unwrap();
    let before = fingerprint(db.store()).await;
    let report = db.reconciler.run(&request("acme", "csv:hr"), snapshot(0..0)).await.unwrap();
    assert_eq!(report.outcome, Outcome::Aborted);
    assert!(report.reason.as_deref().unwrap().starts_with("empty-snapshot guard"), "{:?}", report.reason);
    let members_before: Vec<_> = before.iter().filter(|r| r.contains("@")).collect();
    let after = fingerprint(db.store()).await;
    assert_eq!(members_before, after.iter().filter(|r| r.contains("@")).collect::<Vec<_>>());
    // An empty first listing of a source with no claims is fine.
    let fresh = db.reconciler.run(&request("globex", "csv:hr"), snapshot(0..0)).await.unwrap();
    assert_eq!(fresh.outcome, Outcome::Applied);
}

#[tokio::test]
async fn a_dry_run_writes_only_the_run_record_and_its_plan() {
    let db = temp_db_with(MaxRemovals::Count(100)).await;
    db.reconciler.run(&request("acme", "csv:hr"), snapshot(0..10)).await.unwrap();
    let before = fingerprint(db.store()).await;
    let mut dry = request("acme", "csv:hr");
    dry.options.dry_run = true;
    let report = db.reconciler.run(&dry, snapshot(5..20)).await.unwrap();
    assert_eq!(report.outcome, Outcome::DryRun);
    assert_eq!((report.counts.added, report.counts.removed), (10, 5));
    let after = fingerprint(db.store()).await;
    let new_rows: Vec<_> = after.iter().filter(|r| !before.contains(r)).collect();
    assert_eq!(new_rows, vec![&format!("{} dry_run", report.run_id), &"planned 15".to_owned()]);
}

#[tokio::test]
async fn a_dry_run_reports_a_guard_trip_without_holding_a_plan() {
    let db = temp_db().await;
    db.reconciler.run(&request("acme", "csv:hr"), snapshot(0..10)).await.unwrap();
    let mut dry = request("acme", "csv:hr");
    dry.options.dry_run = true;
    let report = db.reconciler.run(&dry, snapshot(0..2)).await.unwrap();
    assert_eq!(report.outcome, Outcome::DryRun);
    assert!(
        report.reason.as_deref().unwrap().contains("would be held back: mass-removal guard"),
        "{:?}",
        report.reason
    );
    let refused = db.reconciler.approve(report.run_id).await.unwrap_err();
    assert!(refused.to_string().contains("only runs held back"), "{refused}");
}

#[tokio::test]
async fn nothing_reaches_across_teamspaces() {
    let db = temp_db().await;
    db.reconciler.run(&request("acme", "csv:hr"), snapshot(0..5)).await.unwrap();
    db.reconciler.run(&request("globex", "csv:hr"), snapshot(0..5)).await.unwrap();
    let mut forced = request("globex", "csv:hr");
    forced.options.allow_mass_removal = true;
    db.reconciler.run(&forced, snapshot(0..0)).await.unwrap();
    let acme = db.store().teamspace("acme").await.unwrap();
    let globex = db.store().teamspace("globex").await.unwrap();
    assert_eq!(db.store().count_members(acme.id).await.unwrap(), 5);
    assert_eq!(db.store().count_members(globex.id).await.unwrap(), 0);
}

#[tokio::test]
async fn concurrent_writers_on_one_file_lose_no_update() {
    let db = temp_db().await;
    let other = db.second_reconciler().await;
    let mut tasks = Vec::new();
    for writer in 0..4u128 {
        let reconciler = if writer % 2 == 0 { db.reconciler.clone() } else { other.clone() };
        tasks.push(tokio::spawn(async move {
            for i in 0..15u128 {
                let n = writer * 1000 + i;
                let delta = Desired::Deltas(vec![Delta::Upsert(claim(n))]);
                let report = reconciler.run(&request("acme", "manual"), delta).await.unwrap();
                assert_eq!(report.outcome, Outcome::Applied);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let acme = db.store().teamspace("acme").await.unwrap();
    assert_eq!(db.store().count_members(acme.id).await.unwrap(), 60);
    assert_eq!(count(db.store(), "audit_events").await, 60);
    assert_eq!(db.store().check_integrity().await.unwrap(), Vec::<String>::new());
}

#[tokio::test]
async fn an_unchanged_snapshot_is_skipped_only_while_nothing_else_changed() {
    let db = temp_db_with(MaxRemovals::Count(100)).await;
    let with_email = |mail: &str| {
        let mut member = claim(1);
        member.email = mail.parse().unwrap();
        Desired::Snapshot(vec![member])
    };
    // graph owns the attributes (it outranks csv); csv's differing email does not apply.
    db.reconciler.run(&request("acme", "graph:dev"), with_email("graph@contoso.com")).await.unwrap();
    let first = db.reconciler.run(&request("acme", "csv:hr"), with_email("csv@contoso.com")).await.unwrap();
    assert_eq!((first.counts.updated, first.counts.unchanged), (0, 1));
    let again = db.reconciler.run(&request("acme", "csv:hr"), with_email("csv@contoso.com")).await.unwrap();
    assert_eq!((again.counts.updated, again.counts.unchanged), (0, 1), "a repeat changes nothing");

    // graph lets go: the member stays (csv claims it) and csv's values may now apply, so the
    // same csv snapshot must be planned in full, not skipped.
    let mut let_go = request("acme", "graph:dev");
    let_go.options.allow_mass_removal = true;
    assert_eq!(db.reconciler.run(&let_go, Desired::Snapshot(vec![])).await.unwrap().outcome, Outcome::Applied);
    let after = db.reconciler.run(&request("acme", "csv:hr"), with_email("csv@contoso.com")).await.unwrap();
    assert_eq!(after.counts.updated, 1, "{:?}", after.counts);
    let acme = db.store().teamspace("acme").await.unwrap();
    let members = db.store().list_members(acme.id).await.unwrap();
    assert_eq!(members[0].email, "csv@contoso.com");
    assert_eq!(members[0].sources, ["csv:hr"]);
    let before = fingerprint(db.store()).await;
    let repeat = db.reconciler.run(&request("acme", "csv:hr"), with_email("CSV@contoso.com")).await.unwrap();
    assert_eq!((repeat.counts.updated, repeat.counts.unchanged), (0, 1), "email case is not a change");
    let changed: Vec<_> = fingerprint(db.store()).await.into_iter().filter(|r| !before.contains(r)).collect();
    assert_eq!(changed, [format!("{} applied", repeat.run_id)], "an empty plan writes only its run");
}

#[tokio::test]
async fn a_repeated_merge_is_skipped_but_never_mistaken_for_a_snapshot() {
    let db = temp_db_with(MaxRemovals::Count(100)).await;
    let merge = |range: std::ops::Range<u128>| Desired::Deltas(range.map(|n| Delta::Upsert(claim(n))).collect());
    let hr = || request("acme", "csv:hr");
    assert_eq!(db.reconciler.run(&hr(), merge(0..10)).await.unwrap().counts.added, 10);
    assert_eq!(db.reconciler.run(&hr(), merge(10..20)).await.unwrap().counts.added, 10);
    let before = fingerprint(db.store()).await;
    let again = db.reconciler.run(&hr(), merge(10..20)).await.unwrap();
    assert_eq!((again.counts.added, again.counts.updated, again.counts.unchanged), (0, 0, 10));
    let changed: Vec<_> = fingerprint(db.store()).await.into_iter().filter(|r| !before.contains(r)).collect();
    assert_eq!(changed, [format!("{} applied", again.run_id)], "a repeated merge writes only its run");
    // The same claims as a snapshot are another input: replace drops what the merges added before.
    let replace = db.reconciler.run(&hr(), Desired::Snapshot(claims(10..20))).await.unwrap();
    assert_eq!((replace.counts.removed, replace.counts.unchanged), (10, 10), "{:?}", replace.counts);
    // Another change to the teamspace since: the merge is planned in full.
    db.reconciler.run(&request("acme", "manual"), Desired::Deltas(vec![Delta::Upsert(claim(15))])).await.unwrap();
    let mut renamed = claim(15);
    renamed.email = "fifteen@contoso.com".parse().unwrap();
    db.reconciler.run(&request("acme", "graph:dev"), Desired::Snapshot(vec![renamed])).await.unwrap();
    let after = db.reconciler.run(&hr(), merge(10..20)).await.unwrap();
    assert_eq!((after.counts.updated, after.counts.unchanged), (0, 10), "graph's email wins, so nothing moves");
    assert_eq!(db.store().check_integrity().await.unwrap(), Vec::<String>::new());
}

#[tokio::test]
async fn a_teamspace_larger_than_one_load_page_plans_exactly() {
    // 40,000 members span three pages of the packed load (16,384 each); some have two claims.
    let db = temp_db_with(MaxRemovals::Count(100)).await;
    db.reconciler.run(&request("acme", "csv:hr"), snapshot(0..40_000)).await.unwrap();
    let shared: Vec<Delta> =
        [0, 16_383, 16_384, 16_385, 32_768, 39_999].into_iter().map(|n| Delta::Upsert(claim(n))).collect();
    db.reconciler.run(&request("acme", "manual"), Desired::Deltas(shared)).await.unwrap();

    // Drop the last 10 (one of them shared) and rename one member at a page boundary.
    let mut next = claims(0..39_990);
    next[16_384].email = "renamed@contoso.com".parse().unwrap();
    let report = db.reconciler.run(&request("acme", "csv:hr"), Desired::Snapshot(next)).await.unwrap();
    assert_eq!(
        (report.counts.added, report.counts.removed, report.counts.updated, report.counts.unchanged),
        (0, 9, 1, 39_989),
        "{:?}",
        report.counts
    );
    let acme = db.store().teamspace("acme").await.unwrap();
    assert_eq!(db.store().count_members(acme.id).await.unwrap(), 39_991, "39,990 listed + 1 kept by its manual claim");
    assert_eq!(db.store().check_integrity().await.unwrap(), Vec::<String>::new());
    let again = db.reconciler.run(&request("acme", "csv:hr"), Desired::Snapshot(claims(0..39_990))).await.unwrap();
    assert_eq!((again.counts.updated, again.counts.removed), (1, 0), "the rename is reverted, nothing else moves");
}

/// Enough rows that every kind of write fills several multi-row statements and leaves a
/// remainder, mixed with keyed updates, removals and claim-only changes in one plan.
#[tokio::test]
async fn plans_larger_than_a_statement_chunk_write_every_row() {
    mixed_plan_writes_every_row(1).await;
}

/// The same plan four times larger: on PostgreSQL its new rows are streamed with `COPY`, its
/// other rows written by statements, in one round.
#[tokio::test]
async fn plans_large_enough_to_be_copied_write_every_row() {
    mixed_plan_writes_every_row(4).await;
}

/// A first import of `600 × scale` members, then one plan that adds, renames, removes and
/// gains claims, each `scale` times as many.
async fn mixed_plan_writes_every_row(scale: u128) {
    let db = temp_db_with(MaxRemovals::Count(1000 * scale as u64)).await;
    let first = db.reconciler.run(&request("acme", "csv:hr"), snapshot(0..600 * scale)).await.unwrap();
    assert_eq!(first.counts.added, 600 * scale as u64);
    let graph = db.reconciler.run(&request("acme", "graph:dev"), snapshot(590 * scale..610 * scale)).await.unwrap();
    assert_eq!(graph.counts.added, 10 * scale as u64);

    // csv:hr now lists 50..857: drops 0..50, renames 50..100, gains 600..610 (already
    // members through graph) and adds 610..857 (each times `scale`).
    let mut listing = claims(50 * scale..857 * scale);
    for claim in &mut listing[..50 * scale as usize] {
        claim.email = format!("renamed{}@contoso.com", claim.oid).parse().unwrap();
    }
    let report = db.reconciler.run(&request("acme", "csv:hr"), Desired::Snapshot(listing)).await.unwrap();
    assert_eq!(report.outcome, Outcome::Applied);
    let counts = &report.counts;
    // Unchanged: 100..600 kept, 600..610 gained a claim.
    let s = scale as u64;
    assert_eq!((counts.added, counts.updated, counts.removed, counts.unchanged), (247 * s, 50 * s, 50 * s, 510 * s));

    let teamspace = db.store().teamspace("acme").await.unwrap();
    let members = db.store().list_members(teamspace.id).await.unwrap();
    let mut oids: Vec<_> = members.iter().map(|m| m.oid).collect();
    oids.sort();
    assert_eq!(oids, (50 * scale..857 * scale).map(oid).collect::<Vec<_>>());
    let number: std::collections::HashMap<_, _> = (50 * scale..857 * scale).map(|n| (oid(n), n)).collect();
    for member in &members {
        let n = number[&member.oid];
        let expected =
            if n < 100 * scale { format!("renamed{}@contoso.com", member.oid) } else { format!("dev{n}@contoso.com") };
        assert_eq!(member.email.as_str(), expected);
    }
    assert_eq!(count(db.store(), "claims").await, (807 + 20) * scale as i64);
    let events = (600 + 10 + 247 + 50 + 50) * scale as i64;
    assert_eq!(count(db.store(), "audit_events").await, events);
    let ids: (i64, i64, i64) = sqlx::query_as("SELECT min(id), max(id), count(DISTINCT id) FROM audit_events")
        .fetch_one(&inspect(db.store()).await)
        .await
        .unwrap();
    assert_eq!(ids, (1, events, events), "event ids are dense and unique");
    // The last run's events follow its plan: oid order, whatever each change is.
    let (actions, event_oids): (Vec<String>, Vec<Vec<u8>>) =
        sqlx::query_as::<_, (String, Vec<u8>)>("SELECT action, oid FROM audit_events WHERE run_id = $1 ORDER BY id")
            .bind(report.run_id.0)
            .fetch_all(&inspect(db.store()).await)
            .await
            .unwrap()
            .into_iter()
            .unzip();
    assert!(event_oids.windows(2).all(|w| w[0] < w[1]), "the run's events are in plan order");
    let tally = |action: &str| actions.iter().filter(|a| *a == action).count() as u64;
    assert_eq!((tally("added"), tally("updated"), tally("removed")), (247 * s, 50 * s, 50 * s));
    assert_eq!(db.store().outbox_backlog().await.unwrap().0, events, "every event is pending");
    assert_eq!(db.store().check_integrity().await.unwrap(), Vec::<String>::new());
}

/// PostgreSQL writes a plan 50,000 rows at a time; a plan of more is written whole, its
/// events in plan order, and a held one is kept whole for approval (on SQLite, the same).
/// PostgreSQL also analyses the members with a write this large.
#[tokio::test]
async fn plans_larger_than_a_round_of_statements_are_written_and_held_whole() {
    const ROWS: u128 = 60_001;
    let db = temp_db_with(MaxRemovals::Count(10)).await;
    let first = db.reconciler.run(&request("acme", "csv:hr"), snapshot(0..ROWS)).await.unwrap();
    assert_eq!((first.outcome, first.counts.added), (Outcome::Applied, ROWS as u64));
    let events: Vec<Vec<u8>> = sqlx::query_scalar("SELECT oid FROM audit_events WHERE run_id = $1 ORDER BY id")
        .bind(first.run_id.0)
        .fetch_all(&inspect(db.store()).await)
        .await
        .unwrap();
    let planned: Vec<Vec<u8>> = (0..ROWS).map(|n| oid(n).to_bytes().to_vec()).collect();
    assert!(events == planned, "{} events, not one per member in plan order", events.len());
    assert_eq!(db.store().outbox_backlog().await.unwrap().0, ROWS as i64);
    if on_postgres() {
        // Analysed with the write, so the next run reads the members in index order at once.
        let known: i64 = sqlx::query_scalar("SELECT reltuples::bigint FROM pg_class WHERE relname = 'members'")
            .fetch_one(&inspect(db.store()).await)
            .await
            .unwrap();
        assert_eq!(known, ROWS as i64, "the members' statistics count the bulk write");
    }

    let held = db.reconciler.run(&request("acme", "csv:hr"), snapshot(ROWS..ROWS + 1)).await.unwrap();
    assert_eq!(held.outcome, Outcome::Aborted);
    let (kept, total) = db.store().planned_changes(held.run_id, i64::MAX).await.unwrap();
    assert_eq!((kept.len() as u64, total), (ROWS as u64 + 1, ROWS as u64 + 1));
    assert!(kept.windows(2).all(|w| w[0].oid < w[1].oid), "the held plan keeps its order");
    let approved = db.reconciler.approve(held.run_id).await.unwrap();
    assert_eq!((approved.counts.added, approved.counts.removed), (1, ROWS as u64));
    let acme = db.store().teamspace("acme").await.unwrap();
    assert_eq!(db.store().count_members(acme.id).await.unwrap(), 1);
    assert_eq!(db.store().check_integrity().await.unwrap(), Vec::<String>::new());
}

#[tokio::test]
async fn a_refused_scim_write_leaves_nothing_and_the_transaction_goes_on() {
    use c7sync::clock::Millis;
    use c7sync::store::{GroupRow, ResourceKind, ScimPut, StoreError, UniqueKey, UserRow};
    let db = temp_db().await;
    let user = |id: &str, name: &str| UserRow {
        id: id.into(),
        user_name: name.into(),
        external_id: None,
        display_name: None,
        active: true,
        oid: None,
        member_problem: None,
        resource: "{}".into(),
    };
    let group = GroupRow {
        id: "g1".into(),
        display_name: "Developers".into(),
        external_id: None,
        member_ids: vec!["kept".into()],
        resource: "{}".into(),
    };
    let mut session = db.store().begin_write("acme").await.unwrap();
    session.scim_put(ScimPut::User(&user("kept", "ada@contoso.com")), Millis(1)).await.unwrap();
    // The same userName (case-insensitively) under another id: refused by the unique index.
    let refused = session.scim_put(ScimPut::User(&user("undone", "ADA@contoso.com")), Millis(2)).await;
    assert!(matches!(refused, Err(StoreError::Duplicate(UniqueKey::ScimUserName))), "{refused:?}");
    assert!(session.scim_get(ResourceKind::User, "undone").await.unwrap().is_none());
    session.scim_put(ScimPut::User(&user("after", "eve@contoso.com")), Millis(3)).await.unwrap();
    session.scim_put(ScimPut::Group(&group), Millis(4)).await.unwrap();
    session.scim_delete(ResourceKind::User, "after").await.unwrap();
    session.commit().await.unwrap();

    let teamspace = db.store().teamspace("acme").await.unwrap();
    for (kind, id, stored) in [
        (ResourceKind::User, "kept", true),
        (ResourceKind::User, "undone", false),
        (ResourceKind::User, "after", false),
        (ResourceKind::Group, "g1", true),
    ] {
        let found = db.store().scim_get(teamspace.id, kind, id).await.unwrap();
        assert_eq!(found.is_some(), stored, "{id}");
    }
    let kept = db.store().scim_get(teamspace.id, ResourceKind::User, "kept").await.unwrap().unwrap();
    assert_eq!(kept.version, 1, "the refused write did not touch the user it collided with");
}

#[tokio::test]
async fn users_written_together_each_keep_their_own_outcome() {
    use c7sync::clock::Millis;
    use c7sync::store::{ResourceKind, ScimPut, StoreError, UniqueKey, UserRow};
    let db = temp_db().await;
    let user = |id: &str, name: &str, external_id: &str| UserRow {
        id: id.into(),
        user_name: name.into(),
        external_id: Some(external_id.into()),
        display_name: None,
        active: true,
        oid: None,
        member_problem: None,
        resource: format!("{{\"n\":\"{id}\"}}"),
    };
    let mut session = db.store().begin_write("acme").await.unwrap();
    session.scim_put(ScimPut::User(&user("stored", "ada@contoso.com", "x-ada")), Millis(1)).await.unwrap();
    let list = [
        user("new1", "eve@contoso.com", "x-eve"),
        // Clashes with a user stored before the list, then with one earlier in the list.
        user("clash-stored", "ADA@contoso.com", "x-other"),
        user("clash-list", "bob@contoso.com", "x-eve"),
        user("new2", "bob@contoso.com", "x-bob"),
        // An existing id is replaced, not refused.
        user("stored", "ada@contoso.com", "x-ada-2"),
    ];
    let rows: Vec<&UserRow> = list.iter().collect();
    let outcomes = session.scim_put_users(&rows, Millis(2)).await.unwrap();
    assert_eq!(outcomes.len(), list.len());
    assert!(matches!(outcomes[1], Err(StoreError::Duplicate(UniqueKey::ScimUserName))), "{:?}", outcomes[1]);
    assert!(matches!(outcomes[2], Err(StoreError::Duplicate(UniqueKey::ScimExternalId))), "{:?}", outcomes[2]);
    let versions: Vec<Option<i64>> = outcomes.iter().map(|o| o.as_ref().ok().map(|(v, _)| *v)).collect();
    assert_eq!(versions, [Some(1), None, None, Some(1), Some(2)]);
    assert_eq!(outcomes[4].as_ref().unwrap().1, Millis(1), "a replaced user keeps its creation time");
    session.commit().await.unwrap();

    let teamspace = db.store().teamspace("acme").await.unwrap();
    for (id, stored) in [("new1", true), ("clash-stored", false), ("clash-list", false), ("new2", true)] {
        let found = db.store().scim_get(teamspace.id, ResourceKind::User, id).await.unwrap();
        assert_eq!(found.is_some(), stored, "{id}");
    }
    let replaced = db.store().scim_get(teamspace.id, ResourceKind::User, "stored").await.unwrap().unwrap();
    assert_eq!((replaced.version, replaced.resource.as_str()), (2, r#"{"n":"stored"}"#));
}

#[tokio::test]
async fn users_nothing_refuses_are_written_together_in_list_order() {
    use c7sync::clock::Millis;
    use c7sync::store::{ResourceKind, StoreError, UniqueKey, UserRow};
    let db = temp_db().await;
    let user = |n: usize| UserRow {
        id: format!("id-{n}"),
        user_name: format!("user{n}@contoso.com"),
        external_id: Some(format!("x-{n}")),
        display_name: Some(format!("User {n}")),
        active: n % 2 == 0,
        oid: (n % 3 == 0).then(|| oid(n as u128)),
        member_problem: (n % 5 == 0).then(|| "no email".to_owned()),
        resource: format!("{{\"n\":{n}}}"),
    };
    let first: Vec<UserRow> = (0..40).map(user).collect();
    let mut session = db.store().begin_write("acme").await.unwrap();
    let outcomes = session.scim_put_users(&first.iter().collect::<Vec<_>>(), Millis(5)).await.unwrap();
    assert!(outcomes.iter().all(|o| matches!(o, Ok((1, Millis(5))))), "{outcomes:?}");
    // A second list after the first, with one user refused in its middle: the others are
    // written, in order, after the first list's.
    let mut second: Vec<UserRow> = (40..50).map(user).collect();
    second[4].user_name = "USER7@contoso.com".into();
    let outcomes = session.scim_put_users(&second.iter().collect::<Vec<_>>(), Millis(6)).await.unwrap();
    assert!(matches!(outcomes[4], Err(StoreError::Duplicate(UniqueKey::ScimUserName))), "{:?}", outcomes[4]);
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 9);
    session.commit().await.unwrap();

    let teamspace = db.store().teamspace("acme").await.unwrap();
    let listed = db.store().scim_chunk(teamspace.id, ResourceKind::User, 0, 100).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|(_, stored)| stored.id.as_str()).collect();
    let expected: Vec<String> = (0..50).filter(|n| *n != 44).map(|n| format!("id-{n}")).collect();
    assert_eq!(ids, expected.iter().map(String::as_str).collect::<Vec<_>>(), "list order is write order");
    for n in [0, 3, 5, 49] {
        let stored = db.store().scim_get(teamspace.id, ResourceKind::User, &format!("id-{n}")).await.unwrap().unwrap();
        assert_eq!(stored.resource, format!("{{\"n\":{n}}}"));
        assert_eq!(stored.version, 1);
    }
}

/// Members as a comparable list: oid, email, name, claiming sources.
async fn members_of(db: &TestDb) -> Vec<String> {
    let teamspace = db.store().teamspace("acme").await.unwrap();
    let members = db.store().list_members(teamspace.id).await.unwrap();
    members.into_iter().map(|m| format!("{} {} {:?} {:?}", m.oid, m.email, m.display_name, m.sources)).collect()
}

#[tokio::test]
async fn a_snapshot_planned_over_its_base_plans_what_the_whole_snapshot_plans() {
    let base = claims(0..50);
    let mut next = claims(5..55);
    next[10].email = "renamed@contoso.com".parse().unwrap(); // dev15
    let with_base = temp_db_with(MaxRemovals::Count(100)).await;
    let without = temp_db_with(MaxRemovals::Count(100)).await;
    // Manual also claims 7 (dropped by the snapshot, kept by manual) in both.
    for db in [&with_base, &without] {
        db.reconciler.run(&request("acme", "graph:dev"), Desired::Snapshot(base.clone())).await.unwrap();
        let manual = Desired::Deltas(vec![Delta::Upsert(claim(3))]);
        db.reconciler.run(&request("acme", "manual"), manual).await.unwrap();
        // The manual run moved the teamspace on: a base no longer tells the state; applied
        // again, the base is what the source last applied with nothing since.
        db.reconciler.run(&request("acme", "graph:dev"), Desired::Snapshot(base.clone())).await.unwrap();
    }
    let shared = std::sync::Arc::new(base.clone());
    let over = request("acme", "graph:dev").with_snapshot_base(shared.clone());
    let planned_over = with_base.reconciler.run(&over, Desired::Snapshot(next.clone())).await.unwrap();
    let planned_whole =
        without.reconciler.run(&request("acme", "graph:dev"), Desired::Snapshot(next.clone())).await.unwrap();
    assert_eq!(planned_over.outcome, Outcome::Applied);
    let counts =
        |r: &c7sync::reconcile::RunReport| (r.counts.added, r.counts.removed, r.counts.updated, r.counts.unchanged);
    assert_eq!(counts(&planned_over), (5, 4, 1, 44), "member 3 stays, claimed by manual");
    assert_eq!(counts(&planned_over), counts(&planned_whole));
    assert_eq!(members_of(&with_base).await, members_of(&without).await);
    with_base.store().check_integrity().await.unwrap();

    // A base that is not what the source last applied is ignored: the snapshot is planned whole.
    let stale = request("acme", "graph:dev").with_snapshot_base(shared);
    let again = with_base.reconciler.run(&stale, Desired::Snapshot(claims(5..56))).await.unwrap();
    assert_eq!(counts(&again), (1, 0, 1, 49), "dev15 renamed back, dev55 added: {again:?}");
    let whole = without.reconciler.run(&request("acme", "graph:dev"), Desired::Snapshot(claims(5..56))).await.unwrap();
    assert_eq!(counts(&again), counts(&whole));
    assert_eq!(members_of(&with_base).await, members_of(&without).await);
}

#[tokio::test]
async fn the_mass_removal_guard_weighs_a_snapshot_planned_over_its_base_the_same() {
    let db = temp_db_with(MaxRemovals::Count(3)).await;
    let base = claims(0..50);
    db.reconciler.run(&request("acme", "graph:dev"), Desired::Snapshot(base.clone())).await.unwrap();
    let over = request("acme", "graph:dev").with_snapshot_base(std::sync::Arc::new(base));
    let held = db.reconciler.run(&over, Desired::Snapshot(claims(10..50))).await.unwrap();
    assert_eq!(held.outcome, Outcome::Aborted, "{held:?}");
    assert!(held.reason.as_deref().unwrap().contains("10"), "{held:?}");
    let empty = db.reconciler.run(&over, Desired::Snapshot(Vec::new())).await.unwrap();
    assert_eq!(empty.outcome, Outcome::Aborted);
    assert!(empty.reason.as_deref().unwrap().contains("empty-snapshot"), "{empty:?}");
}
