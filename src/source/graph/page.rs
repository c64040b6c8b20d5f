//! One page of `/groups/{id}/transitiveMembers` as Graph sends it, and what c7sync keeps of
//! each member object.

use serde::{Deserialize, Serialize};

use crate::domain::{parse_guid, DisplayName, Email, Oid};
use crate::plan::DesiredClaim;

/// The fields asked for with `$select`. Non-user members come back with only their
/// `@odata.type` and `id`.
pub const SELECT: [&str; 6] = ["id", "mail", "userPrincipalName", "displayName", "accountEnabled", "userType"];

const USER_TYPE: &str = "#microsoft.graph.user";
const GROUP_TYPE: &str = "#microsoft.graph.group";

/// A collection page. `value` is required: an error body that happens to be JSON must not
/// read as an empty page.
#[derive(Debug, Deserialize)]
pub struct Page {
    /// The members on this page.
    pub value: Vec<DirectoryObject>,
    /// The next page, absent on the last.
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
}

/// A member of a group: a user, or a group, device, contact or service principal.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryObject {
    #[serde(rename = "@odata.type")]
    odata_type: Option<String>,
    id: Option<String>,
    mail: Option<String>,
    user_principal_name: Option<String>,
    display_name: Option<String>,
    account_enabled: Option<bool>,
    user_type: Option<String>,
}

/// The attributes of a user c7sync reads: what a delta-mode source keeps per user, and
/// merges Graph's changes into.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserAttributes {
    /// `mail`.
    pub mail: Option<String>,
    /// `userPrincipalName`.
    pub user_principal_name: Option<String>,
    /// `displayName`.
    pub display_name: Option<String>,
    /// `accountEnabled`.
    pub account_enabled: Option<bool>,
    /// `userType`.
    pub user_type: Option<String>,
}

impl UserAttributes {
    /// Takes the attributes `changed` carries. Graph's `users/delta` sends a changed user
    /// with at least the properties that changed: one that is absent is unchanged, one that is
    /// `null` was cleared.
    pub fn merge(&mut self, changed: &serde_json::Map<String, serde_json::Value>) {
        let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
        for (key, value) in changed {
            match key.as_str() {
                "mail" => self.mail = text(value),
                "userPrincipalName" => self.user_principal_name = text(value),
                "displayName" => self.display_name = text(value),
                "accountEnabled" => self.account_enabled = value.as_bool(),
                "userType" => self.user_type = text(value),
                _ => {}
            }
        }
    }
}

/// What kind of directory object a member is, for the membership graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// `#microsoft.graph.user`.
    User,
    /// `#microsoft.graph.group`: a nested group.
    Group,
    /// A device, contact, service principal or anything else: never a member c7sync keeps.
    Other,
}

/// The kind `@odata.type` names.
pub fn object_kind(odata_type: Option<&str>) -> ObjectKind {
    match odata_type {
        Some(USER_TYPE) => ObjectKind::User,
        Some(GROUP_TYPE) => ObjectKind::Group,
        _ => ObjectKind::Other,
    }
}

/// Which users a source wants.
#[derive(Debug, Clone, Copy)]
pub struct UserFilter {
    /// Keep `accountEnabled: false` users.
    pub include_disabled: bool,
    /// Keep `userType: Guest` users.
    pub include_guests: bool,
}

/// What became of one member object.
#[derive(Debug, Clone)]
pub enum Member {
    /// A user the source claims.
    Claimed(DesiredClaim),
    /// A group, device, contact or service principal: nested groups are already flattened by
    /// `transitiveMembers`, so the group objects themselves are skipped.
    NotAUser,
    /// `accountEnabled: false`, and disabled users are not wanted.
    Disabled,
    /// `userType: Guest`, and guests are not wanted.
    Guest,
    /// A user c7sync cannot provision: its id is not a GUID, or it has no usable address.
    Unusable {
        /// The object id as Graph gave it.
        id: String,
        /// Why.
        reason: String,
    },
}

impl DirectoryObject {
    /// The user `id` with `attributes`, as a listing would show it.
    pub fn user(id: uuid::Uuid, attributes: UserAttributes) -> DirectoryObject {
        DirectoryObject {
            odata_type: Some(USER_TYPE.to_owned()),
            id: Some(id.to_string()),
            mail: attributes.mail,
            user_principal_name: attributes.user_principal_name,
            display_name: attributes.display_name,
            account_enabled: attributes.account_enabled,
            user_type: attributes.user_type,
        }
    }

    /// The object's kind and id, when the id is a GUID.
    pub fn kind_and_id(&self) -> (ObjectKind, Option<uuid::Uuid>) {
        (object_kind(self.odata_type.as_deref()), self.id.as_deref().and_then(|id| parse_guid(id).ok()))
    }

    /// The user attributes this object carries.
    pub fn attributes(&self) -> UserAttributes {
        UserAttributes {
            mail: self.mail.clone(),
            user_principal_name: self.user_principal_name.clone(),
            display_name: self.display_name.clone(),
            account_enabled: self.account_enabled,
            user_type: self.user_type.clone(),
        }
    }

    /// Classifies this member. Email is `mail`, else `userPrincipalName`.
    pub fn into_member(self, filter: UserFilter) -> Member {
        if self.odata_type.as_deref() != Some(USER_TYPE) {
            return Member::NotAUser;
        }
        if self.account_enabled == Some(false) && !filter.include_disabled {
            return Member::Disabled;
        }
        if self.user_type.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("guest")) && !filter.include_guests {
            return Member::Guest;
        }
        let id = self.id.unwrap_or_default();
        let oid = match parse_guid(&id) {
            Ok(guid) => Oid::from_u128(guid.as_u128()),
            Err(e) => return Member::Unusable { reason: e.to_string(), id },
        };
        let address = self.mail.filter(|m| !m.trim().is_empty()).or(self.user_principal_name);
        let email = match address.as_deref().map(str::parse::<Email>) {
            Some(Ok(email)) => email,
            Some(Err(e)) => return Member::Unusable { id, reason: e.to_string() },
            None => return Member::Unusable { id, reason: "neither mail nor userPrincipalName is set".into() },
        };
        // A name with control characters is not taken (the member is: the name is optional).
        let display_name = DisplayName::optional(self.display_name.as_deref()).ok().flatten();
        Member::Claimed(DesiredClaim { oid, email, display_name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: UserFilter = UserFilter { include_disabled: true, include_guests: true };

    fn object(json: serde_json::Value) -> DirectoryObject {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn email_is_mail_else_user_principal_name() {
        let with_mail = object(serde_json::json!({
            "@odata.type": "#microsoft.graph.user", "id": "00000000-0000-0000-0000-00000000000a",
            "mail": "ada@example.com", "userPrincipalName": "ada_ext@example.onmicrosoft.com", "displayName": "Ada"
        }));
        let Member::Claimed(claim) = with_mail.into_member(ALL) else { panic!("not claimed") };
        assert_eq!(claim.email.as_str(), "ada@example.com");
        assert_eq!(claim.display_name.as_deref(), Some("Ada"));
        assert_eq!(claim.oid, Oid::from_u128(10));

        let without_mail = object(serde_json::json!({
            "@odata.type": "#microsoft.graph.user", "id": "00000000-0000-0000-0000-00000000000b",
            "mail": null, "userPrincipalName": "bob@example.onmicrosoft.com"
        }));
        let Member::Claimed(claim) = without_mail.into_member(ALL) else { panic!("not claimed") };
        assert_eq!(claim.email.as_str(), "bob@example.onmicrosoft.com");
        assert_eq!(claim.display_name, None);
    }

    #[test]
    fn filters_apply_only_when_asked() {
        let json = serde_json::json!({
            "@odata.type": "#microsoft.graph.user", "id": "00000000-0000-0000-0000-00000000000c",
            "userPrincipalName": "g@example.com", "accountEnabled": false, "userType": "Guest"
        });
        assert!(matches!(object(json.clone()).into_member(ALL), Member::Claimed(_)));
        let no_disabled = UserFilter { include_disabled: false, include_guests: true };
        assert!(matches!(object(json.clone()).into_member(no_disabled), Member::Disabled));
        let no_guests = UserFilter { include_disabled: true, include_guests: false };
        assert!(matches!(object(json).into_member(no_guests), Member::Guest));
    }

    #[test]
    fn non_users_and_unusable_users_are_told_apart() {
        let group = object(serde_json::json!({"@odata.type": "#microsoft.graph.group", "id": "x"}));
        assert!(matches!(group.into_member(ALL), Member::NotAUser));
        let bad_id =
            object(serde_json::json!({"@odata.type": "#microsoft.graph.user", "id": "nope", "mail": "a@b.co"}));
        assert!(matches!(bad_id.into_member(ALL), Member::Unusable { .. }));
        let no_address = object(serde_json::json!({
            "@odata.type": "#microsoft.graph.user", "id": "00000000-0000-0000-0000-00000000000d"
        }));
        let Member::Unusable { reason, .. } = no_address.into_member(ALL) else { panic!("usable") };
        assert!(reason.contains("userPrincipalName"), "{reason}");
    }

    #[test]
    fn an_error_body_is_not_a_page() {
        let error = r#"{"error":{"code":"TooManyRequests","message":"slow down"}}"#;
        assert!(serde_json::from_str::<Page>(error).is_err());
    }
}
