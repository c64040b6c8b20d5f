//! Adding and removing a developer by hand: the `manual` source (the dashboard's "Add user").

use serde::Serialize;

use super::{AdminError, Field};
use crate::domain::{DisplayName, Email, Oid, SourceKind, SourceName, Trigger};
use crate::plan::{Delta, Desired, DesiredClaim};
use crate::reconcile::{Reconciler, RunReport, RunRequest};

/// A developer to provision, as the caller gave them (checked by [`add`]).
#[derive(Debug, Clone, Copy)]
pub struct NewMember<'a> {
    /// The Entra object id.
    pub oid: &'a str,
    /// The email.
    pub email: &'a str,
    /// The display name, if any.
    pub display_name: Option<&'a str>,
}

/// What adding did to the member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Added {
    /// A new member.
    Added,
    /// An existing member's email or name changed.
    Updated,
    /// Already added by hand with these attributes: nothing changed.
    Unchanged,
    /// A member through another source, now also claimed by hand.
    ClaimAdded,
}

impl Added {
    /// The outcome in words.
    pub fn describe(self) -> &'static str {
        match self {
            Added::Added => "added",
            Added::Updated => "updated",
            Added::Unchanged => "already provisioned by hand, unchanged",
            Added::ClaimAdded => "now also claimed by the manual source",
        }
    }
}

/// What removing did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum Removed {
    /// The member is gone.
    Removed,
    /// The manual claim is gone; other sources keep the member.
    ClaimDropped {
        /// The sources that still claim them.
        kept_by: Vec<String>,
    },
}

fn manual_request(teamspace: &str) -> RunRequest {
    RunRequest::new(teamspace, SourceName::manual(), Trigger::Manual)
}

fn parse_oid(text: &str) -> Result<Oid, AdminError> {
    text.parse().map_err(|e| AdminError::Invalid { field: Field::Oid, message: format!("{e}") })
}

/// Provisions a developer by hand; idempotent. Fields are checked before anything is written.
pub async fn add(
    reconciler: &Reconciler,
    teamspace: &str,
    member: NewMember<'_>,
) -> Result<(Oid, Added, RunReport), AdminError> {
    let oid = parse_oid(member.oid)?;
    let email: Email =
        member.email.parse().map_err(|e| AdminError::Invalid { field: Field::Email, message: format!("{e}") })?;
    let display_name = DisplayName::optional(member.display_name)
        .map_err(|e| AdminError::Invalid { field: Field::DisplayName, message: format!("{e}") })?;
    let delta = Delta::Upsert(DesiredClaim { oid, email, display_name });
    let report = reconciler.run(&manual_request(teamspace), Desired::Deltas(vec![delta])).await?;
    let c = report.counts;
    let added = if c.added > 0 {
        Added::Added
    } else if c.updated > 0 {
        Added::Updated
    } else if report.plan.is_empty() {
        Added::Unchanged
    } else {
        Added::ClaimAdded
    };
    Ok((oid, added, report))
}

/// Drops the manual claim on a developer; the member goes when no other source claims them.
/// A member no one added by hand is refused: removing them is their source's business.
pub async fn remove(
    reconciler: &Reconciler,
    teamspace: &str,
    teamspace_id: i64,
    oid: &str,
) -> Result<(Oid, Removed, RunReport), AdminError> {
    let oid = parse_oid(oid)?;
    let Some(member) = reconciler.store().member(teamspace_id, oid).await? else {
        return Err(AdminError::NotFound(format!("{oid} is not a member of {teamspace}")));
    };
    let manual = SourceKind::Manual.as_str();
    if !member.sources.iter().any(|s| s == manual) {
        return Err(AdminError::Conflict(format!(
            "{oid} was not added by hand: it is provisioned by {}. Remove it at that source \
             (the Entra group, the CSV file, or Entra's provisioning scope)",
            member.sources.join(", ")
        )));
    }
    let report = reconciler.run(&manual_request(teamspace), Desired::Deltas(vec![Delta::Drop(oid)])).await?;
    let removed = if report.counts.removed > 0 {
        Removed::Removed
    } else {
        Removed::ClaimDropped { kept_by: member.sources.into_iter().filter(|s| s != manual).collect() }
    };
    Ok((oid, removed, report))
}
