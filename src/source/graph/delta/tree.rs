//! The membership graph a delta-mode source keeps: each tracked group's direct members, and
//! the attributes of the users they name. Delta rounds edit it; the snapshot handed to the
//! core is worked out from it, the same way every time (so a user reachable by two paths
//! stays until both are gone).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::super::page::{DirectoryObject, Member, ObjectKind, UserAttributes, UserFilter};
use super::super::{Listing, ListingSummary, UnusableUser, UNUSABLE_SAMPLE};
use crate::plan::DesiredClaim;

/// A tracked group's direct members that matter: users, and nested groups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Direct {
    /// Direct user members.
    pub users: BTreeSet<Uuid>,
    /// Direct nested groups.
    pub groups: BTreeSet<Uuid>,
}

/// Every tracked group: the configured roots and the groups nested in them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edges {
    /// Group → direct members. A group is tracked while it has an entry.
    pub groups: BTreeMap<Uuid, Direct>,
}

/// The users the tracked groups name, with what c7sync reads of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Users {
    /// User → attributes.
    pub by_id: HashMap<Uuid, UserAttributes>,
    /// Users whose attributes were set since the last listing: their kept classification is
    /// stale. Not saved: a state read back from the store starts with no classifications.
    #[serde(skip)]
    pub touched: HashSet<Uuid>,
}

impl Users {
    /// Sets `user`'s attributes.
    pub fn set(&mut self, user: Uuid, attributes: UserAttributes) {
        self.by_id.insert(user, attributes);
        self.touched.insert(user);
    }
}

/// Each user's classification (claimed, disabled, guest, unusable), kept in memory along
/// with the graph it was made from, and redone for the users [`Users::touched`] names.
#[derive(Debug, Default)]
pub struct Classified {
    by_user: HashMap<Uuid, Member>,
}

/// One member change as a delta round reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberChange {
    /// The group.
    pub group: Uuid,
    /// The member.
    pub member: Uuid,
    /// A user or a nested group (other kinds are dropped before).
    pub kind: ObjectKind,
    /// `@removed`.
    pub removed: bool,
}

/// The membership graph.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembershipGraph {
    /// The configured groups.
    pub roots: Vec<Uuid>,
    /// Tracked groups' direct members.
    pub edges: Edges,
    /// Users' attributes.
    pub users: Users,
}

impl MembershipGraph {
    /// An empty graph for `roots`.
    pub fn new(roots: &[Uuid]) -> Self {
        MembershipGraph { roots: roots.to_vec(), ..MembershipGraph::default() }
    }

    /// Starts tracking `group` with no members yet (its first round fills them in).
    pub fn track(&mut self, group: Uuid) {
        self.edges.groups.entry(group).or_default();
    }

    /// Whether `group` is tracked.
    pub fn is_tracked(&self, group: Uuid) -> bool {
        self.edges.groups.contains_key(&group)
    }

    /// Applies one member change; returns whether it changed anything. Changes to groups not
    /// tracked (a group that left the tree, still in an older query) are ignored, as are a
    /// removal of a member never seen (Graph replays earlier removals in a first round) and
    /// a repeated addition (a round may name an object more than once).
    pub fn apply(&mut self, change: MemberChange) -> bool {
        let Some(direct) = self.edges.groups.get_mut(&change.group) else { return false };
        let set = match change.kind {
            ObjectKind::User => &mut direct.users,
            ObjectKind::Group => &mut direct.groups,
            ObjectKind::Other => return false,
        };
        if change.removed {
            set.remove(&change.member)
        } else {
            set.insert(change.member)
        }
    }

    /// A tracked group was deleted: it has no members any more.
    pub fn clear(&mut self, group: Uuid) -> bool {
        match self.edges.groups.get_mut(&group) {
            Some(direct) if *direct != Direct::default() => {
                *direct = Direct::default();
                true
            }
            _ => false,
        }
    }

    /// A user was deleted: it leaves every group and its attributes are forgotten.
    pub fn delete_user(&mut self, user: Uuid) -> bool {
        let mut changed = self.users.by_id.remove(&user).is_some();
        for direct in self.edges.groups.values_mut() {
            changed |= direct.users.remove(&user);
        }
        changed
    }

    /// The groups reachable from the roots, roots first.
    fn reachable(&self) -> Vec<Uuid> {
        let mut seen: HashSet<Uuid> = HashSet::new();
        let mut order = Vec::new();
        let mut stack: Vec<Uuid> = self.roots.iter().rev().copied().collect();
        while let Some(group) = stack.pop() {
            if !seen.insert(group) {
                continue;
            }
            order.push(group);
            if let Some(direct) = self.edges.groups.get(&group) {
                stack.extend(direct.groups.iter().rev().copied());
            }
        }
        order
    }

    /// Groups now in the tree that are not tracked yet: each needs a first round.
    pub fn joined(&self) -> Vec<Uuid> {
        self.reachable().into_iter().filter(|g| !self.is_tracked(*g)).collect()
    }

    /// Stops tracking groups that left the tree, and forgets users no tracked group names.
    /// Returns the groups dropped.
    pub fn prune(&mut self) -> Vec<Uuid> {
        let reachable: HashSet<Uuid> = self.reachable().into_iter().collect();
        let left: Vec<Uuid> = self.edges.groups.keys().filter(|g| !reachable.contains(g)).copied().collect();
        for group in &left {
            self.edges.groups.remove(group);
        }
        let named: HashSet<Uuid> = self.edges.groups.values().flat_map(|d| d.users.iter().copied()).collect();
        self.users.by_id.retain(|user, _| named.contains(user));
        left
    }

    /// Users some tracked group names whose attributes are not known.
    pub fn users_without_attributes(&self) -> Vec<Uuid> {
        let mut missing: BTreeSet<Uuid> = BTreeSet::new();
        for direct in self.edges.groups.values() {
            missing.extend(direct.users.iter().filter(|u| !self.users.by_id.contains_key(u)));
        }
        missing.into_iter().collect()
    }

    /// Every user reachable from the roots, sorted, each once.
    pub fn transitive_users(&self) -> Vec<Uuid> {
        let mut users: Vec<Uuid> = Vec::new();
        for group in self.reachable() {
            if let Some(direct) = self.edges.groups.get(&group) {
                users.extend(direct.users.iter().copied());
            }
        }
        users.sort_unstable();
        users.dedup();
        users
    }

    /// The source's snapshot: every reachable user, classified as a full listing classifies
    /// it (the same filter, the same reasons). `classified` keeps each user's classification
    /// between ticks, redone only when its attributes changed: parsing 100,000 addresses
    /// every tick would be most of a quiet tick's time.
    pub fn listing(&mut self, filter: UserFilter, classified: &mut Classified) -> Listing {
        let mut summary = ListingSummary { groups: self.roots.len() as u32, ..ListingSummary::default() };
        let users = self.transitive_users();
        let mut claims: Vec<DesiredClaim> = Vec::with_capacity(users.len());
        let empty = UserAttributes::default();
        for user in users {
            summary.objects += 1;
            let member = match classified.by_user.get(&user) {
                Some(member) if !self.users.touched.contains(&user) => member.clone(),
                _ => {
                    let attributes = self.users.by_id.get(&user).unwrap_or(&empty).clone();
                    let member = DirectoryObject::user(user, attributes).into_member(filter);
                    classified.by_user.insert(user, member.clone());
                    member
                }
            };
            match member {
                Member::Claimed(claim) => claims.push(claim),
                Member::NotAUser => summary.not_users += 1,
                Member::Disabled => summary.disabled += 1,
                Member::Guest => summary.guests += 1,
                Member::Unusable { id, reason } => {
                    summary.unusable += 1;
                    if summary.unusable_sample.len() < UNUSABLE_SAMPLE {
                        summary.unusable_sample.push(UnusableUser { id, reason });
                    }
                }
            }
        }
        self.users.touched.clear();
        // Sorted by GUID already; by oid (the same 128 bits) for the core.
        claims.sort_unstable_by_key(|c| c.oid);
        if classified.by_user.len() > 2 * summary.objects as usize + 1024 {
            // Users who left the tree: forget them now and then, not every tick.
            let tree: HashSet<Uuid> = self.transitive_users().into_iter().collect();
            classified.by_user.retain(|user, _| tree.contains(user));
        }
        summary.users = claims.len() as u64;
        Listing { claims, summary }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: UserFilter = UserFilter { include_disabled: true, include_guests: true };

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn add(group: u128, member: u128, kind: ObjectKind) -> MemberChange {
        MemberChange { group: id(group), member: id(member), kind, removed: false }
    }

    fn remove(group: u128, member: u128, kind: ObjectKind) -> MemberChange {
        MemberChange { removed: true, ..add(group, member, kind) }
    }

    fn user(graph: &mut MembershipGraph, n: u128) {
        let attributes = UserAttributes {
            mail: Some(format!("u{n}@example.com")),
            account_enabled: Some(true),
            ..UserAttributes::default()
        };
        graph.users.set(id(n), attributes);
    }

    /// Root 1 holds user 10 and group 2; group 2 holds users 10 and 11.
    fn two_paths() -> MembershipGraph {
        let mut graph = MembershipGraph::new(&[id(1)]);
        graph.track(id(1));
        graph.apply(add(1, 10, ObjectKind::User));
        graph.apply(add(1, 2, ObjectKind::Group));
        assert_eq!(graph.joined(), vec![id(2)]);
        graph.track(id(2));
        graph.apply(add(2, 10, ObjectKind::User));
        graph.apply(add(2, 11, ObjectKind::User));
        user(&mut graph, 10);
        user(&mut graph, 11);
        graph
    }

    #[test]
    fn a_user_reachable_by_two_paths_stays_until_both_are_gone() {
        let mut graph = two_paths();
        assert_eq!(graph.transitive_users(), vec![id(10), id(11)]);
        graph.apply(remove(1, 10, ObjectKind::User));
        assert_eq!(graph.transitive_users(), vec![id(10), id(11)], "still in group 2");
        graph.apply(remove(2, 10, ObjectKind::User));
        assert_eq!(graph.transitive_users(), vec![id(11)]);
    }

    #[test]
    fn a_group_leaving_the_tree_stops_being_tracked_and_its_users_go() {
        let mut graph = two_paths();
        graph.apply(remove(1, 2, ObjectKind::Group));
        assert_eq!(graph.prune(), vec![id(2)]);
        assert!(!graph.is_tracked(id(2)));
        assert_eq!(graph.transitive_users(), vec![id(10)]);
        assert!(!graph.users.by_id.contains_key(&id(11)), "nobody names user 11 any more");
        assert!(!graph.apply(add(2, 12, ObjectKind::User)), "an untracked group's changes are ignored");
    }

    #[test]
    fn replayed_removals_and_repeated_additions_change_nothing() {
        let mut graph = two_paths();
        let before = graph.clone();
        assert!(!graph.apply(remove(1, 99, ObjectKind::User)));
        assert!(!graph.apply(add(2, 11, ObjectKind::User)));
        assert_eq!(graph, before);
    }

    #[test]
    fn cycles_end() {
        let mut graph = two_paths();
        graph.apply(add(2, 1, ObjectKind::Group));
        assert!(graph.joined().is_empty());
        assert_eq!(graph.transitive_users(), vec![id(10), id(11)]);
    }

    #[test]
    fn the_listing_classifies_as_a_full_listing_does() {
        let mut graph = two_paths();
        let disabled = UserAttributes { account_enabled: Some(false), ..graph.users.by_id[&id(11)].clone() };
        graph.users.set(id(11), disabled);
        let no_disabled = UserFilter { include_disabled: false, include_guests: true };
        let listing = graph.listing(no_disabled, &mut Classified::default());
        assert_eq!(listing.claims.len(), 1);
        assert_eq!(listing.summary.disabled, 1);
        assert_eq!(graph.listing(ALL, &mut Classified::default()).claims.len(), 2);
        // A kept classification is redone when the attributes change.
        let mut classified = Classified::default();
        assert_eq!(graph.listing(no_disabled, &mut classified).claims.len(), 1);
        let mut enabled = graph.users.by_id[&id(11)].clone();
        enabled.account_enabled = Some(true);
        graph.users.set(id(11), enabled);
        assert_eq!(graph.listing(no_disabled, &mut classified).claims.len(), 2);
        graph.apply(add(1, 12, ObjectKind::User));
        assert_eq!(graph.users_without_attributes(), vec![id(12)]);
    }

    #[test]
    fn a_deleted_user_leaves_every_group() {
        let mut graph = two_paths();
        assert!(graph.delete_user(id(10)));
        assert_eq!(graph.transitive_users(), vec![id(11)]);
    }
}
