//! Planner properties: a plan applied to the current state yields the desired state, planning
//! again is empty, and a source never touches another's claims.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use proptest::prelude::*;

use super::*;
use crate::domain::fingerprint;

/// A member in the test model: what the store would hold.
#[derive(Debug, Clone, PartialEq)]
struct Modelled {
    email: Email,
    display_name: Option<crate::domain::DisplayName>,
    attrs_source: SourceKey,
    claims: BTreeSet<SourceKey>,
}

type State = BTreeMap<Oid, Modelled>;

fn to_current(state: &State) -> Vec<CurrentMember> {
    state
        .iter()
        .map(|(oid, m)| CurrentMember {
            oid: *oid,
            email_hash: fingerprint::email(&m.email),
            name_hash: m.display_name.as_deref().map(fingerprint::name),
            attrs_source: m.attrs_source,
            claims: m.claims.iter().copied().collect(),
        })
        .collect()
}

/// Applies a plan the way the store does.
fn apply(state: &State, plan: &Plan, me: SourceKey) -> State {
    let mut next = state.clone();
    for change in &plan.changes {
        match &change.member {
            MemberChange::Add => {
                assert!(!next.contains_key(&change.oid), "add of an existing member");
                let attributes = change.attributes.clone().expect("an add carries attributes");
                next.insert(
                    change.oid,
                    Modelled {
                        email: attributes.email,
                        display_name: attributes.display_name,
                        attrs_source: me,
                        claims: BTreeSet::from([me]),
                    },
                );
                continue;
            }
            MemberChange::Remove => {
                let removed = next.remove(&change.oid).expect("remove of a missing member");
                assert_eq!(removed.claims, BTreeSet::from([me]), "removed a member others claim");
                continue;
            }
            MemberChange::Update { .. } => {
                let member = next.get_mut(&change.oid).expect("update of a missing member");
                let attributes = change.attributes.clone().expect("an update carries attributes");
                member.email = attributes.email;
                // No name from the source keeps the stored one, as the store's UPDATE does.
                if attributes.display_name.is_some() {
                    member.display_name = attributes.display_name;
                }
                member.attrs_source = me;
            }
            MemberChange::Unchanged => {}
        }
        let member = next.get_mut(&change.oid).expect("claim change on a missing member");
        match change.claim {
            ClaimChange::Gain => assert!(member.claims.insert(me), "gained a held claim"),
            ClaimChange::Drop => assert!(member.claims.remove(&me), "dropped a missing claim"),
            ClaimChange::Keep => {}
        }
    }
    next
}

fn email(i: u8) -> Email {
    format!("user{i}@contoso.com").parse().unwrap()
}

fn claim_strategy() -> impl Strategy<Value = DesiredClaim> {
    (0u128..24, 0u8..4, proptest::option::of(0u8..3)).prop_map(|(oid, mail, name)| DesiredClaim {
        oid: Oid::from_u128(oid),
        email: email(mail),
        display_name: name.map(|n| format!("Name {n}").parse().unwrap()),
    })
}

fn state_strategy() -> impl Strategy<Value = State> {
    proptest::collection::btree_map(
        (0u128..24).prop_map(Oid::from_u128),
        (0u8..4, proptest::option::of(0u8..3), proptest::collection::btree_set(1i64..=3, 1..=3)),
        0..20,
    )
    .prop_flat_map(|raw| {
        let len = raw.len();
        (Just(raw), proptest::collection::vec(0usize..3, len))
    })
    .prop_map(|(raw, owner_picks)| {
        raw.into_iter()
            .zip(owner_picks)
            .map(|((oid, (mail, name, claims)), pick)| {
                let owners: Vec<_> = claims.iter().copied().collect();
                let attrs_source = owners[pick % owners.len()];
                let member = Modelled {
                    email: email(mail),
                    display_name: name.map(|n| format!("Name {n}").parse().unwrap()),
                    attrs_source,
                    claims,
                };
                (oid, member)
            })
            .collect()
    })
}

fn planner(me: SourceKey) -> Planner {
    let ranks = HashMap::from([(1, SourceKind::Manual), (2, SourceKind::Graph), (3, SourceKind::Csv)]);
    Planner::new(me, ranks)
}

fn last_wins(claims: &[DesiredClaim]) -> BTreeMap<Oid, DesiredClaim> {
    claims.iter().map(|c| (c.oid, c.clone())).collect()
}

fn others_claims(state: &State, me: SourceKey) -> BTreeSet<(Oid, SourceKey)> {
    state.iter().flat_map(|(oid, m)| m.claims.iter().filter(|s| **s != me).map(move |s| (*oid, *s))).collect()
}

proptest! {
    #[test]
    fn snapshot_plan_reaches_the_desired_state_and_is_then_empty(
        state in state_strategy(),
        snapshot in proptest::collection::vec(claim_strategy(), 0..30),
        me in 1i64..=3,
        current_reversed in any::<bool>(),
    ) {
        let planner = planner(me);
        // The store hands `current` sorted; other callers may not.
        let mut current = to_current(&state);
        if current_reversed {
            current.reverse();
        }
        let plan = planner.plan(Desired::Snapshot(snapshot.clone()), &current);
        let next = apply(&state, &plan, me);

        let wanted = last_wins(&snapshot);
        let mine: BTreeSet<Oid> = next.iter().filter(|(_, m)| m.claims.contains(&me)).map(|(o, _)| *o).collect();
        prop_assert_eq!(&mine, &wanted.keys().copied().collect::<BTreeSet<_>>());
        for (oid, claim) in &wanted {
            let member = &next[oid];
            if member.attrs_source == me {
                prop_assert_eq!(&member.email, &claim.email);
                if claim.display_name.is_some() {
                    prop_assert_eq!(&member.display_name, &claim.display_name);
                }
            }
        }
        prop_assert!(next.values().all(|m| !m.claims.is_empty()), "a member without claims survived");
        prop_assert_eq!(others_claims(&state, me), others_claims(&next, me));

        let again = planner.plan(Desired::Snapshot(snapshot), &to_current(&next));
        prop_assert!(again.is_empty(), "second plan not empty: {:?}", again.changes);
        prop_assert_eq!(again.unchanged, wanted.len() as u64);
    }

    #[test]
    fn delta_plans_touch_only_what_they_name(
        state in state_strategy(),
        deltas in proptest::collection::vec(
            prop_oneof![
                claim_strategy().prop_map(Delta::Upsert),
                (0u128..24).prop_map(|o| Delta::Drop(Oid::from_u128(o))),
            ],
            0..20,
        ),
        me in 1i64..=3,
    ) {
        let planner = planner(me);
        let plan = planner.plan(Desired::Deltas(deltas.clone()), &to_current(&state));
        let next = apply(&state, &plan, me);

        let named: BTreeSet<Oid> = deltas.iter().map(|d| match d { Delta::Upsert(c) => c.oid, Delta::Drop(o) => *o }).collect();
        for (oid, member) in &state {
            if !named.contains(oid) {
                prop_assert_eq!(next.get(oid), Some(member), "unnamed member changed");
            }
        }
        prop_assert_eq!(others_claims(&state, me), others_claims(&next, me));
        let again = planner.plan(Desired::Deltas(deltas), &to_current(&next));
        prop_assert!(again.is_empty(), "second plan not empty: {:?}", again.changes);
    }
}

#[test]
fn a_stronger_source_overrides_attributes_and_a_weaker_one_does_not() {
    let oid = Oid::from_u128(7);
    let state: State = BTreeMap::from([(
        oid,
        Modelled { email: email(0), display_name: None, attrs_source: 2, claims: BTreeSet::from([2]) },
    )]);
    let wants =
        |mail| Desired::Deltas(vec![Delta::Upsert(DesiredClaim { oid, email: email(mail), display_name: None })]);

    let weaker = planner(3).plan(wants(1), &to_current(&state));
    assert_eq!(weaker.changes.len(), 1);
    assert_eq!(weaker.changes[0].member, MemberChange::Unchanged, "csv must not override graph");
    assert_eq!(weaker.changes[0].claim, ClaimChange::Gain);

    let stronger = planner(1).plan(wants(1), &to_current(&state));
    assert!(matches!(stronger.changes[0].member, MemberChange::Update { .. }));
    assert_eq!(stronger.counts(), Counts { added: 0, removed: 0, updated: 1, unchanged: 0 });
}

#[test]
fn dropping_a_shared_member_keeps_it() {
    let oid = Oid::from_u128(9);
    let state: State = BTreeMap::from([(
        oid,
        Modelled { email: email(0), display_name: None, attrs_source: 2, claims: BTreeSet::from([2, 3]) },
    )]);
    let plan = planner(2).plan(Desired::Snapshot(vec![]), &to_current(&state));
    assert_eq!(plan.changes.len(), 1);
    assert_eq!(plan.changes[0].claim, ClaimChange::Drop);
    assert_eq!(plan.changes[0].member, MemberChange::Unchanged);
    assert_eq!(plan.counts().removed, 0);
}

#[test]
fn snapshot_digests_ignore_order_and_email_case_but_not_content() {
    let mut claims = vec![claim(1, "a@contoso.com", Some("A")), claim(2, "b@contoso.com", None)];
    let digest = snapshot_digest(&claims);
    claims.reverse();
    assert_eq!(snapshot_digest(&claims), digest);
    claims[0].email = "B@Contoso.com".parse().unwrap();
    assert_eq!(snapshot_digest(&claims), digest, "emails compare case-insensitively");
    claims[1].display_name = Some("B".parse().unwrap());
    assert_ne!(snapshot_digest(&claims), digest, "a name differs from none");
    claims.pop();
    assert_ne!(snapshot_digest(&claims), snapshot_digest(&[]));
}

fn claim(oid: u128, mail: &str, name: Option<&str>) -> DesiredClaim {
    DesiredClaim {
        oid: Oid::from_u128(oid),
        email: mail.parse().unwrap(),
        display_name: name.map(|n| n.parse().unwrap()),
    }
}

#[test]
fn a_million_desired_claims_stay_small() {
    // Issue 14 budgets a re-plan of a million members at 250 MB, the input's million claims
    // included: each byte here is a megabyte there.
    assert_eq!(std::mem::size_of::<DesiredClaim>(), 48);
    // So a snapshot's claims become intents in their own buffer.
    assert_eq!(std::mem::size_of::<Intent>(), std::mem::size_of::<DesiredClaim>());
}

#[test]
fn members_joined_page_by_page_plan_as_members_joined_at_once() {
    let state: State = (0..40u128)
        .map(|o| {
            let claims = if o % 3 == 0 { BTreeSet::from([1, 3]) } else { BTreeSet::from([3]) };
            (Oid::from_u128(o), Modelled { email: email((o % 7) as u8), display_name: None, attrs_source: 3, claims })
        })
        .collect();
    let snapshot: Vec<DesiredClaim> = (20..60u128).map(|o| claim(o, &format!("m{o}@contoso.com"), None)).collect();
    let current = to_current(&state);
    let whole = planner(3).plan(Desired::Snapshot(snapshot.clone()), &current);

    let planner = planner(3);
    let mut planning = planner.start(Desired::Snapshot(snapshot));
    for page in current.chunks(7) {
        planning.join(page);
    }
    let (paged, joined) = planning.finish();
    assert_eq!(paged, whole);
    assert_eq!(joined, Joined { members: 40, claimed: 40 });
    assert_eq!(paged.counts(), Counts { added: 20, removed: 13, updated: 20, unchanged: 0 });
}
