//! From SCIM resources to `scim` claims. A resource is not a member: an active user whose oid
//! attribute (default `externalId`) is a GUID and who has an address is, through the
//! reconcile core, in the same transaction as the resource change.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::filter::{get_ci, parse_path};
use super::schema::USERS;
use crate::config::ScimSettings;
use crate::domain::{parse_guid, DisplayName, Email, Oid};
use crate::plan::{Delta, DesiredClaim};
use crate::store::{ScimUserFacts, StoreError, WriteSession};

/// How a teamspace's scim source turns users into claims.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The attribute holding the Entra object id.
    pub oid_attribute: String,
    /// Lower-cased group display names; empty means every active user.
    pub groups: Vec<String>,
}

impl From<&ScimSettings> for Policy {
    fn from(settings: &ScimSettings) -> Self {
        Policy {
            oid_attribute: settings.oid_attribute.clone(),
            groups: settings.groups.iter().map(|g| g.to_lowercase()).collect(),
        }
    }
}

/// What a user body says about membership.
#[derive(Debug, Clone, PartialEq)]
pub struct UserFacts {
    /// The object id, when the oid attribute is a GUID.
    pub oid: Option<Oid>,
    /// `active` (absent counts as active, RFC 7643 leaves it to the provider).
    pub active: bool,
    /// The claim the user would make.
    pub claim: Option<DesiredClaim>,
    /// Why it would make none although active.
    pub problem: Option<String>,
}

/// Reads the oid, address and name of a user body.
pub fn user_facts(body: &Map<String, Value>, policy: &Policy) -> UserFacts {
    let body_value = Value::Object(body.clone());
    let active = match body.get("active") {
        Some(Value::Bool(b)) => *b,
        _ => true,
    };
    let oid_text = attribute_text(&body_value, &policy.oid_attribute);
    let oid = match oid_text.as_deref().map(parse_guid) {
        Some(Ok(guid)) => Ok(Oid::from_u128(guid.as_u128())),
        Some(Err(e)) => Err(format!("{} is not an Entra object id: {e}", policy.oid_attribute)),
        None => Err(format!(
            "{} is missing; map Entra's objectId to it in the provisioning attribute mappings",
            policy.oid_attribute
        )),
    };
    let address = primary_address(body);
    let email = address.as_deref().map(str::parse::<Email>);
    let display_name = display_name(body);
    match (oid, email) {
        (Ok(oid), Some(Ok(email))) => UserFacts {
            oid: Some(oid),
            active,
            // The writer refuses a body whose displayName has control characters.
            claim: Some(DesiredClaim {
                oid,
                email,
                display_name: DisplayName::optional(display_name.as_deref()).ok().flatten(),
            }),
            problem: None,
        },
        (Ok(oid), Some(Err(e))) => UserFacts { oid: Some(oid), active, claim: None, problem: Some(e.to_string()) },
        (Ok(oid), None) => {
            UserFacts { oid: Some(oid), active, claim: None, problem: Some("no email and no userName".into()) }
        }
        (Err(problem), _) => UserFacts { oid: None, active, claim: None, problem: Some(problem) },
    }
}

/// A string at an attribute path like `externalId` or `urn:…:enterprise:2.0:User:employeeNumber`.
fn attribute_text(body: &Value, path: &str) -> Option<String> {
    let parsed = parse_path(path).ok()?;
    let container = match parsed.attr.urn.as_deref() {
        Some(urn) if !urn.eq_ignore_ascii_case(USERS.core) => get_ci(body, urn)?,
        _ => body,
    };
    let mut value = get_ci(container, &parsed.attr.name)?;
    if let Some(sub) = &parsed.attr.sub {
        value = get_ci(value, sub)?;
    }
    value.as_str().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// The primary email, else the work email, else `userName`.
fn primary_address(body: &Map<String, Value>) -> Option<String> {
    let emails = body.get("emails").and_then(Value::as_array);
    let pick = |want: &dyn Fn(&Value) -> bool| {
        emails?.iter().find(|e| want(e)).and_then(|e| e.get("value")).and_then(Value::as_str).map(str::to_owned)
    };
    pick(&|e| e.get("primary") == Some(&Value::Bool(true)))
        .or_else(|| pick(&|e| e.get("type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("work"))))
        .or_else(|| body.get("userName").and_then(Value::as_str).map(str::to_owned))
}

/// The name a user body gives: `displayName`, else `name.formatted`, else given and family.
pub(super) fn display_name(body: &Map<String, Value>) -> Option<String> {
    let text =
        |v: Option<&Value>| v.and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    text(body.get("displayName")).or_else(|| {
        let name = body.get("name")?;
        text(name.get("formatted")).or_else(|| {
            let parts: Vec<String> = ["givenName", "familyName"].iter().filter_map(|k| text(name.get(*k))).collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        })
    })
}

/// The claim changes for `oids` after the session's SCIM writes: an oid is claimed while any
/// of its SCIM users is active, usable, and (with a `groups` policy) in one of those groups.
pub async fn deltas_for(
    session: &mut WriteSession,
    policy: &Policy,
    oids: impl IntoIterator<Item = Oid>,
) -> Result<Vec<Delta>, StoreError> {
    let mut unique: Vec<Oid> = oids.into_iter().collect();
    unique.sort_unstable();
    unique.dedup();
    let mut users: HashMap<Oid, Vec<ScimUserFacts>> = HashMap::new();
    for (oid, user) in session.scim_users_of_oids(&unique).await? {
        users.entry(oid).or_default().push(user);
    }
    let mut deltas = Vec::with_capacity(unique.len());
    for oid in unique {
        let mut claim = None;
        for user in users.remove(&oid).unwrap_or_default() {
            if !user.active || !user.usable {
                continue;
            }
            if !policy.groups.is_empty() {
                let groups = session.scim_group_names_of(&user.id).await?;
                if !groups.iter().any(|g| policy.groups.contains(g)) {
                    continue;
                }
            }
            let body: Map<String, Value> =
                serde_json::from_str(&user.resource).map_err(|e| StoreError::corrupt("scim_users.resource", e))?;
            claim = user_facts(&body, policy).claim;
            if claim.is_some() {
                break;
            }
        }
        deltas.push(match claim {
            Some(claim) => Delta::Upsert(claim),
            None => Delta::Drop(oid),
        });
    }
    Ok(deltas)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> Policy {
        Policy { oid_attribute: "externalId".into(), groups: Vec::new() }
    }

    fn facts(body: Value) -> UserFacts {
        user_facts(body.as_object().unwrap(), &policy())
    }

    #[test]
    fn the_oid_comes_from_external_id_and_the_address_from_the_primary_email() {
        let user = facts(json!({
            "userName": "ada@contoso.onmicrosoft.com", "externalId": "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
            "emails": [{"value": "home@ada.org", "type": "home"}, {"value": "ada@contoso.com", "primary": true}],
            "name": {"givenName": "Ada", "familyName": "Lovelace"}
        }));
        let claim = user.claim.unwrap();
        assert_eq!(claim.email.as_str(), "ada@contoso.com");
        assert_eq!(claim.display_name.as_deref(), Some("Ada Lovelace"));
        assert!(user.active);

        let work = facts(json!({"userName": "x@y.z", "externalId": "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
            "emails": [{"value": "w@contoso.com", "type": "work"}], "active": false}));
        assert_eq!(work.claim.unwrap().email.as_str(), "w@contoso.com");
        assert!(!work.active);
    }

    #[test]
    fn a_missing_or_bad_oid_is_a_visible_problem() {
        let missing = facts(json!({"userName": "ada@contoso.com"}));
        assert!(missing.claim.is_none() && missing.problem.unwrap().contains("objectId"));
        let bad = facts(json!({"userName": "ada@contoso.com", "externalId": "ada"}));
        assert!(bad.problem.unwrap().contains("not an Entra object id"));
        let other_attribute = Policy {
            oid_attribute: "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber".into(),
            groups: Vec::new(),
        };
        let body = json!({"userName": "ada@contoso.com",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "3f2504e0-4f89-41d3-9a0c-0305e82c3301"}});
        assert!(user_facts(body.as_object().unwrap(), &other_attribute).claim.is_some());
    }
}
