//! The first changes of a plan, as run reports show them (CLI, API, console).

use serde::Serialize;

use super::{Change, MemberChange};

/// How many rows of each kind of change a run report shows.
pub const PLAN_PREVIEW_ROWS: usize = 20;

/// One preview row of a plan, for JSON.
#[derive(Debug, Serialize)]
pub struct PreviewRow<'a> {
    /// `add`, `remove` or `update`.
    pub action: &'static str,
    /// The member.
    pub oid: String,
    /// Their email (new, for an update).
    pub email: &'a str,
    /// Their display name.
    pub display_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The email before an update.
    pub previous_email: Option<&'a str>,
}

/// The first [`PLAN_PREVIEW_ROWS`] adds, removes and updates of a plan.
pub fn plan_preview(changes: &[Change]) -> Vec<PreviewRow<'_>> {
    let mut taken = [0usize; 3];
    let mut rows = Vec::new();
    for change in changes {
        let (slot, action, previous_email) = match &change.member {
            MemberChange::Add => (0, "add", None),
            MemberChange::Remove => (1, "remove", None),
            MemberChange::Update { previous } => (2, "update", previous.as_ref().map(|p| p.email.as_str())),
            MemberChange::Unchanged => continue,
        };
        if taken[slot] < PLAN_PREVIEW_ROWS {
            taken[slot] += 1;
            rows.push(PreviewRow {
                action,
                oid: change.oid.to_string(),
                email: change.email().map(|e| e.as_str()).unwrap_or_default(),
                display_name: change.display_name(),
                previous_email,
            });
        }
    }
    rows
}
