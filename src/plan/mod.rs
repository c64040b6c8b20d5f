//! The pure planner: what one source wants (a snapshot or deltas) against what the teamspace
//! holds now → the list of claim and member changes. No I/O; linear after one sort; the
//! teamspace is merge-joined as it is read, never held whole.

pub mod guard;
pub mod preview;

use std::collections::HashMap;

use serde::Serialize;
use smallvec::SmallVec;

use crate::domain::{fingerprint, DisplayName, Email, Oid, SourceKind};

/// The store's key for a source row. Opaque to the planner beyond equality and precedence.
pub type SourceKey = i64;

/// "This source says `oid` belongs here, with this email and name."
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredClaim {
    /// The member's Entra object id.
    pub oid: Oid,
    /// The address the source gives.
    pub email: Email,
    /// `None` means the source does not say; an existing name is then kept.
    pub display_name: Option<DisplayName>,
}

/// One instruction from a delta source (SCIM, CSV `merge`, manual).
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    /// Claim (or keep claiming) this member with these attributes.
    Upsert(DesiredClaim),
    /// Drop this source's claim on the member, if it holds one.
    Drop(Oid),
}

/// What a source hands to the core.
#[derive(Debug, Clone)]
pub enum Desired {
    /// The complete list of this source's claims: anything it claims now and not here is dropped.
    Snapshot(Vec<DesiredClaim>),
    /// Individual changes; everything not mentioned stays as it is.
    Deltas(Vec<Delta>),
}

/// A member as stored, with the sources claiming it. Attributes are fingerprints (see
/// [`crate::domain::fingerprint`]): planning never needs the stored text.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentMember {
    /// Entra object id.
    pub oid: Oid,
    /// Fingerprint of the current email.
    pub email_hash: i64,
    /// Fingerprint of the current display name, if it has one.
    pub name_hash: Option<i64>,
    /// The source whose values the email and name are.
    pub attrs_source: SourceKey,
    /// Every source that claims the member (never empty for a stored member). One inline
    /// slot: most members have a single source.
    pub claims: SmallVec<[SourceKey; 1]>,
}

/// A member's email and display name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attributes {
    /// Email.
    pub email: Email,
    /// Display name.
    pub display_name: Option<DisplayName>,
}

/// Who is planning, and how sources rank against each other for attributes.
#[derive(Debug, Clone)]
pub struct Planner {
    me: SourceKey,
    ranks: HashMap<SourceKey, SourceKind>,
}

/// How the planning source's own claim on a member changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimChange {
    /// The source starts claiming the member.
    Gain,
    /// The source keeps its claim.
    Keep,
    /// The source drops its claim.
    Drop,
}

/// What happens to the member itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberChange {
    /// First claim: the member is provisioned.
    Add,
    /// Last claim gone: the member is deprovisioned.
    Remove,
    /// Email or display name changes. `previous` is filled in from the store before the plan
    /// is recorded (the planner only sees fingerprints).
    Update {
        /// The values before the change (boxed: most rows are not updates).
        previous: Option<Box<Attributes>>,
    },
    /// The member is not affected (only a claim moves).
    Unchanged,
}

/// One row of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// The member.
    pub oid: Oid,
    /// The planning source's claim.
    pub claim: ClaimChange,
    /// The member's fate.
    pub member: MemberChange,
    /// The member's attributes after the change. Adds and updates carry the source's values
    /// (an update's `display_name: None` keeps the stored name); removals and claim-only rows
    /// carry `None` until the store fills in the stored values for the record.
    pub attributes: Option<Attributes>,
}

impl Change {
    /// The email for display and records, once attributes are known.
    pub fn email(&self) -> Option<&Email> {
        self.attributes.as_ref().map(|a| &a.email)
    }

    /// The display name for display and records, once attributes are known.
    pub fn display_name(&self) -> Option<&str> {
        self.attributes.as_ref().and_then(|a| a.display_name.as_deref())
    }

    /// Whether the store must fill in stored values before this row is recorded.
    pub fn needs_stored_attributes(&self) -> bool {
        self.attributes.is_none() || matches!(self.member, MemberChange::Update { previous: None })
    }
}

/// The outcome of planning: changes in oid order, plus how many members were already right.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Only rows where something changes.
    pub changes: Vec<Change>,
    /// Desired members that needed nothing.
    pub unchanged: u64,
}

/// Member-level totals of a plan, as reported for every run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Members provisioned.
    pub added: u64,
    /// Members deprovisioned.
    pub removed: u64,
    /// Members whose email or name changed.
    pub updated: u64,
    /// Desired members already right (including claim-only changes).
    pub unchanged: u64,
}

impl Plan {
    /// Member-level totals. A claim that moves without touching the member counts as unchanged.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts { unchanged: self.unchanged, ..Counts::default() };
        for change in &self.changes {
            match change.member {
                MemberChange::Add => counts.added += 1,
                MemberChange::Remove => counts.removed += 1,
                MemberChange::Update { .. } => counts.updated += 1,
                MemberChange::Unchanged if change.claim == ClaimChange::Gain => counts.unchanged += 1,
                MemberChange::Unchanged => {}
            }
        }
        counts
    }

    /// True when applying would change nothing at all.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// What the source wants for one oid.
enum Intent {
    Want(DesiredClaim),
    DropMine(Oid),
}

impl Intent {
    fn oid(&self) -> Oid {
        match self {
            Intent::Want(claim) => claim.oid,
            Intent::DropMine(oid) => *oid,
        }
    }
}

impl Planner {
    /// A planner for source `me`; `ranks` maps every source that may appear in the current
    /// state to its kind (the attribute precedence, see [`SourceKind`]).
    pub fn new(me: SourceKey, ranks: HashMap<SourceKey, SourceKind>) -> Self {
        Planner { me, ranks }
    }

    /// Plans `desired` against `current` (every current member the source may touch: for a
    /// snapshot, the whole teamspace; for deltas, at least the oids they name). `current` may
    /// come in any order (the store hands it sorted, which skips a sort). Duplicate oids in
    /// the input: the last one wins.
    pub fn plan(&self, desired: Desired, current: &[CurrentMember]) -> Plan {
        let mut planning = self.start(desired);
        if current.is_sorted_by_key(|m| m.oid) {
            planning.join(current);
        } else {
            let mut in_order: Vec<&CurrentMember> = current.iter().collect();
            in_order.sort_unstable_by_key(|m| m.oid);
            planning.join(in_order);
        }
        planning.finish().0
    }

    /// Starts planning `desired`; the teamspace's members are then joined in, in oid order, as
    /// they are read ([`Planning::join`]), so a million of them never need to be held at once.
    /// Takes `desired` by value so that its strings move into the plan instead of being
    /// copied: a million-member snapshot is large.
    pub fn start(&self, desired: Desired) -> Planning<'_> {
        let (intents, drop_unlisted): (Vec<Intent>, bool) = match desired {
            // Same size and alignment: collected in place, no second buffer.
            Desired::Snapshot(claims) => (claims.into_iter().map(Intent::Want).collect(), true),
            Desired::Deltas(deltas) => (
                deltas
                    .into_iter()
                    .map(|delta| match delta {
                        Delta::Upsert(claim) => Intent::Want(claim),
                        Delta::Drop(oid) => Intent::DropMine(oid),
                    })
                    .collect(),
                false,
            ),
        };
        let intents = sorted_last_wins(intents);
        // Room for one change per intent; removals beyond that grow it.
        let plan = Plan { changes: Vec::with_capacity(intents.len()), unchanged: 0 };
        Planning {
            planner: self,
            intents: intents.into_iter().peekable(),
            drop_unlisted,
            plan,
            joined: Joined::default(),
        }
    }

    fn decide(&self, intent: Intent, existing: Option<&CurrentMember>) -> Option<Change> {
        match (intent, existing) {
            (Intent::Want(claim), None) => Some(Change {
                oid: claim.oid,
                claim: ClaimChange::Gain,
                member: MemberChange::Add,
                attributes: Some(attributes_of(claim)),
            }),
            (Intent::Want(claim), Some(member)) => {
                let claim_change = if member.claims.contains(&self.me) { ClaimChange::Keep } else { ClaimChange::Gain };
                let email_differs = fingerprint::email(&claim.email) != member.email_hash;
                // A source that gives no name leaves the stored one alone.
                let name_differs =
                    claim.display_name.as_deref().is_some_and(|n| Some(fingerprint::name(n)) != member.name_hash);
                let oid = claim.oid;
                if (email_differs || name_differs) && self.may_write_attributes(member) {
                    Some(Change {
                        oid,
                        claim: claim_change,
                        member: MemberChange::Update { previous: None },
                        attributes: Some(attributes_of(claim)),
                    })
                } else if claim_change == ClaimChange::Gain {
                    Some(Change { oid, claim: ClaimChange::Gain, member: MemberChange::Unchanged, attributes: None })
                } else {
                    None
                }
            }
            (Intent::DropMine(oid), Some(member)) if member.claims.contains(&self.me) => {
                let fate = if member.claims.len() == 1 { MemberChange::Remove } else { MemberChange::Unchanged };
                Some(Change { oid, claim: ClaimChange::Drop, member: fate, attributes: None })
            }
            (Intent::DropMine(_), _) => None,
        }
    }

    /// A source may overwrite a member's email and name if it already owns them, if their
    /// owner no longer claims the member, or if it outranks the owner. Without this rule two
    /// sources that disagree would flip the member back and forth on every run.
    fn may_write_attributes(&self, member: &CurrentMember) -> bool {
        if member.attrs_source == self.me || !member.claims.contains(&member.attrs_source) {
            return true;
        }
        self.rank(self.me) < self.rank(member.attrs_source)
    }

    fn rank(&self, source: SourceKey) -> (SourceKind, SourceKey) {
        // An unknown source ranks last; the key breaks ties so the older source wins.
        (self.ranks.get(&source).copied().unwrap_or(SourceKind::Csv), source)
    }
}

/// A plan in the making: the source's intents, sorted by oid, merge-joined with the
/// teamspace's members as they arrive.
pub struct Planning<'p> {
    planner: &'p Planner,
    intents: std::iter::Peekable<std::vec::IntoIter<Intent>>,
    drop_unlisted: bool,
    plan: Plan,
    joined: Joined,
}

/// What the join saw of the teamspace, for the removal guard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Joined {
    /// Current members joined.
    pub members: u64,
    /// Of those, the ones the planning source claims.
    pub claimed: u64,
}

impl Planning<'_> {
    /// Joins the next current members. They ascend by oid and follow every member joined
    /// before: the store checks its pages are so; [`Planner::plan`] sorts for callers whose
    /// members are not.
    pub fn join<'m>(&mut self, members: impl IntoIterator<Item = &'m CurrentMember>) {
        let me = self.planner.me;
        for member in members {
            self.joined.members += 1;
            if member.claims.contains(&me) {
                self.joined.claimed += 1;
            }
            while let Some(intent) = self.intents.next_if(|i| i.oid() < member.oid) {
                record(self.planner, &mut self.plan, intent, None);
            }
            match self.intents.next_if(|i| i.oid() == member.oid) {
                Some(intent) => record(self.planner, &mut self.plan, intent, Some(member)),
                None if self.drop_unlisted => {
                    record(self.planner, &mut self.plan, Intent::DropMine(member.oid), Some(member))
                }
                None => {}
            }
        }
    }

    /// The plan, once every member has been joined; intents left name no current member.
    pub fn finish(mut self) -> (Plan, Joined) {
        for intent in self.intents {
            record(self.planner, &mut self.plan, intent, None);
        }
        (self.plan, self.joined)
    }
}

fn record(planner: &Planner, plan: &mut Plan, intent: Intent, existing: Option<&CurrentMember>) {
    let wanted = matches!(intent, Intent::Want(_));
    match planner.decide(intent, existing) {
        Some(change) => plan.changes.push(change),
        None if wanted => plan.unchanged += 1,
        None => {}
    }
}

/// An order-independent digest of a snapshot: equal digests mean the same members with the
/// same attributes (emails compared case-insensitively, as planning does). A snapshot with
/// repeated oids digests differently from its de-duplicated form, which only costs a full plan.
pub fn snapshot_digest(claims: &[DesiredClaim]) -> [u8; 16] {
    digest_of(claims.len() as u128, claims.iter())
}

/// Tells a merge input's digest from a snapshot's of the same claims: after a merge of X other
/// claims of the source may remain, so a replace with X then is not a no-op (nor the reverse).
const MERGE: u128 = 0x6d65_7267_6500_0000_0000_0000_0000_0000;

/// Of a merge input (upserts only; `None` when it drops any claim), for the same shortcut as
/// [`snapshot_digest`]: upserting the same claims again, with nothing applied since, changes
/// nothing.
pub fn merge_digest(deltas: &[Delta]) -> Option<[u8; 16]> {
    let claims: Option<Vec<&DesiredClaim>> = deltas
        .iter()
        .map(|delta| match delta {
            Delta::Upsert(claim) => Some(claim),
            Delta::Drop(_) => None,
        })
        .collect();
    claims.map(|claims| digest_of(claims.len() as u128 ^ MERGE, claims.into_iter()))
}

fn digest_of<'a>(seed: u128, claims: impl Iterator<Item = &'a DesiredClaim>) -> [u8; 16] {
    let mut sum = seed;
    let mut buffer = Vec::with_capacity(128);
    for claim in claims {
        buffer.clear();
        buffer.extend_from_slice(&claim.oid.to_bytes());
        buffer.extend_from_slice(&fingerprint::email(&claim.email).to_le_bytes());
        match &claim.display_name {
            Some(name) => {
                buffer.push(1);
                buffer.extend_from_slice(name.as_bytes());
            }
            None => buffer.push(0),
        }
        sum = sum.wrapping_add(xxhash_rust::xxh3::xxh3_128(&buffer));
    }
    sum.to_le_bytes()
}

/// Sorts by oid, keeping only the last intent given for each oid.
fn sorted_last_wins(mut intents: Vec<Intent>) -> Vec<Intent> {
    // Input already in order (without repeats) spares the stable sort's scratch buffer, half
    // the input's size.
    if intents.is_sorted_by(|a, b| a.oid() < b.oid()) {
        return intents;
    }
    // Stable sort keeps input order among equal oids, so the last of each run is the last given.
    intents.sort_by_key(Intent::oid);
    let mut write = 0;
    for read in 0..intents.len() {
        if read + 1 < intents.len() && intents[read + 1].oid() == intents[read].oid() {
            continue;
        }
        intents.swap(write, read);
        write += 1;
    }
    intents.truncate(write);
    intents
}

fn attributes_of(claim: DesiredClaim) -> Attributes {
    Attributes { email: claim.email, display_name: claim.display_name }
}

#[cfg(test)]
mod tests;
