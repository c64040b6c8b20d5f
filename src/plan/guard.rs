//! Guards between a plan and the database: refuse snapshot runs that would remove too many
//! members, or that arrive empty while the source holds claims (a broken export, a wrong group).

use crate::domain::MaxRemovals;
use crate::plan::Plan;

/// What the guard knows about the run and the teamspace.
#[derive(Debug, Clone, Copy)]
pub struct GuardInput {
    /// Snapshot runs are guarded; delta runs (SCIM, manual, merge) are explicit instructions.
    pub is_snapshot: bool,
    /// Entries in the snapshot (after de-duplication).
    pub snapshot_len: u64,
    /// Claims the source holds before the run.
    pub source_claims: u64,
    /// Members in the teamspace before the run.
    pub current_members: u64,
    /// The teamspace's `max_removals`.
    pub max_removals: MaxRemovals,
    /// `--allow-mass-removal`, or an approval.
    pub allow_mass_removal: bool,
}

/// Why a run was held back. Its `Display` is the reason stored on the run and shown to the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardTrip {
    /// The snapshot was empty while the source held claims.
    #[error(
        "empty-snapshot guard: the source listed no members but holds {held} claim(s); \
         an empty listing is more often a broken export or a wrong group than a real change. \
         Check the source, then re-run with --allow-mass-removal or approve this run"
    )]
    EmptySnapshot {
        /// Claims the source holds.
        held: u64,
    },
    /// More removals than `max_removals` allows.
    #[error(
        "mass-removal guard: the run would remove {removals} of {members} member(s), more than \
         max_removals = {limit} allows ({allowed}). Review the plan with `c7sync runs show`, \
         then approve it or re-run with --allow-mass-removal"
    )]
    MassRemoval {
        /// Members the plan removes.
        removals: u64,
        /// Members before the run.
        members: u64,
        /// The configured limit, as written.
        limit: String,
        /// The limit resolved to a count.
        allowed: u64,
    },
}

/// A plan that passed the guards: the only way to a [`crate::store::WriteSession::apply`],
/// so no code path can write a plan the guards did not see.
#[derive(Debug)]
pub struct Cleared<'a> {
    plan: &'a Plan,
}

impl<'a> Cleared<'a> {
    /// The plan that passed.
    pub fn plan(&self) -> &'a Plan {
        self.plan
    }
}

/// Checks a plan; `Err` holds it back.
pub fn check(plan: &Plan, input: GuardInput) -> Result<Cleared<'_>, GuardTrip> {
    if !input.is_snapshot || input.allow_mass_removal {
        return Ok(Cleared { plan });
    }
    if input.snapshot_len == 0 && input.source_claims > 0 {
        return Err(GuardTrip::EmptySnapshot { held: input.source_claims });
    }
    let removals = plan.counts().removed;
    let allowed = input.max_removals.allowed(input.current_members);
    if removals > allowed {
        return Err(GuardTrip::MassRemoval {
            removals,
            members: input.current_members,
            limit: input.max_removals.to_string(),
            allowed,
        });
    }
    Ok(Cleared { plan })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Oid;
    use crate::plan::{Change, ClaimChange, MemberChange};

    fn plan_removing(n: u64) -> Plan {
        Plan {
            changes: (0..n)
                .map(|i| Change {
                    oid: Oid::from_u128(i.into()),
                    claim: ClaimChange::Drop,
                    member: MemberChange::Remove,
                    attributes: None,
                })
                .collect(),
            unchanged: 0,
        }
    }

    fn input(snapshot_len: u64, members: u64) -> GuardInput {
        GuardInput {
            is_snapshot: true,
            snapshot_len,
            source_claims: members,
            current_members: members,
            max_removals: MaxRemovals::Percent(20.0),
            allow_mass_removal: false,
        }
    }

    #[test]
    fn removals_up_to_the_limit_pass_and_one_more_trips() {
        assert!(check(&plan_removing(20), input(80, 100)).is_ok());
        let trip = check(&plan_removing(21), input(79, 100)).unwrap_err();
        assert!(matches!(trip, GuardTrip::MassRemoval { removals: 21, allowed: 20, .. }));
        assert!(trip.to_string().contains("21 of 100"));
    }

    #[test]
    fn an_empty_snapshot_trips_even_under_the_removal_limit() {
        let mut guard = input(0, 3);
        guard.max_removals = MaxRemovals::Count(10);
        assert!(matches!(check(&plan_removing(3), guard), Err(GuardTrip::EmptySnapshot { held: 3 })));
    }

    #[test]
    fn override_and_delta_runs_are_not_guarded() {
        let mut guard = input(0, 100);
        guard.allow_mass_removal = true;
        assert!(check(&plan_removing(100), guard).is_ok());
        let mut deltas = input(0, 100);
        deltas.is_snapshot = false;
        assert!(check(&plan_removing(100), deltas).is_ok());
    }
}
