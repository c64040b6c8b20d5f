//! The words the store keeps for what happened to a member and to an event, as types: each is
//! written from its variant and parsed back where it is read, so a caller matches on variants
//! and a stored word that does not parse is reported as corrupt, not compared as text.

use serde::Serialize;

use crate::plan::MemberChange;

/// What an audit event did to the member; webhooks carry it as `member.<action>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::EnumString, strum::IntoStaticStr, strum::Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AuditAction {
    /// Provisioned.
    Added,
    /// Deprovisioned.
    Removed,
    /// Email or display name changed.
    Updated,
}

/// What one change of a plan does to the member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::EnumString, strum::IntoStaticStr, strum::Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum MemberEffect {
    /// The member is added.
    Add,
    /// The member is removed.
    Remove,
    /// The member's email or name changes.
    Update,
    /// Only a claim moves.
    Unchanged,
}

impl From<&MemberChange> for MemberEffect {
    fn from(change: &MemberChange) -> Self {
        match change {
            MemberChange::Add => MemberEffect::Add,
            MemberChange::Remove => MemberEffect::Remove,
            MemberChange::Update { .. } => MemberEffect::Update,
            MemberChange::Unchanged => MemberEffect::Unchanged,
        }
    }
}

impl From<AuditAction> for MemberEffect {
    fn from(action: AuditAction) -> Self {
        match action {
            AuditAction::Added => MemberEffect::Add,
            AuditAction::Removed => MemberEffect::Remove,
            AuditAction::Updated => MemberEffect::Update,
        }
    }
}

/// Where an event's delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::EnumString, strum::IntoStaticStr, strum::Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not yet acknowledged; retried.
    Pending,
    /// Acknowledged by the receiver.
    Delivered,
    /// Given up on after the last attempt; `events retry` makes it pending again.
    Dead,
}

/// `text`, stored in `column`, as a word of type `W`.
pub(super) fn parse<W: std::str::FromStr>(column: &'static str, text: String) -> Result<W, super::StoreError> {
    text.parse().map_err(|_| super::StoreError::corrupt(column, format!("unknown value `{text}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_unknown_ones_are_corrupt() {
        for action in [AuditAction::Added, AuditAction::Removed, AuditAction::Updated] {
            let word: &'static str = action.into();
            assert_eq!(parse::<AuditAction>("audit_events.action", word.to_owned()).unwrap(), action);
            assert_eq!(serde_json::to_value(action).unwrap(), word);
        }
        assert_eq!(MemberEffect::from(AuditAction::Removed).to_string(), "remove");
        assert_eq!(<&str>::from(DeliveryStatus::Dead), "dead");
        let unknown = parse::<DeliveryStatus>("outbox.status", "lost".to_owned()).unwrap_err();
        assert!(unknown.to_string().contains("outbox.status") && unknown.to_string().contains("lost"), "{unknown}");
    }
}
