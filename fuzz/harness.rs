//! What each fuzz target does with one input. Shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets`, nightly) and by the corpus replay that `cargo test` runs on stable
//! (`tests/it/fuzz_corpus.rs`), so the corpus is checked against exactly what was fuzzed.
//!
//! Beyond "never panics", each target asserts properties that must hold for any input.

use std::collections::HashSet;

use c7sync::scim::filter::{self, FilterScope};
use c7sync::scim::patch::{self, PatchRequest};
use c7sync::scim::schema::{ResourceType, GROUPS, USERS};
use c7sync::source::csv::{self, ReadOptions};
use c7sync::store::{ResourceKind, ScimCondition};
use serde_json::{json, Map, Value};

/// A user as Entra provisions it, with every attribute kind the filters and paths can reach.
fn user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "id": "5d8f1c2e-0000-4000-8000-000000000001",
        "externalId": "0b8f9d42-6b1a-4c55-9a1e-3f1c2d4e5f60",
        "userName": "Alex.Wilber@contoso.com",
        "active": true,
        "displayName": "Alex Wilber",
        "name": {"givenName": "Alex", "familyName": "Wilber", "formatted": "Alex Wilber"},
        "emails": [{"value": "alex@contoso.com", "type": "work", "primary": true},
                   {"value": "alex@home.example", "type": "home"}],
        "phoneNumbers": [{"value": "+1 555 0100", "type": "work"}],
        "addresses": [{"type": "work", "locality": "Redmond", "country": "US"}],
        "roles": [],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":
            {"employeeNumber": "42", "department": "Docs", "manager": {"value": "m-1"}},
        "meta": {"resourceType": "User", "created": "2026-01-01T00:00:00Z",
                 "lastModified": "2026-01-02T00:00:00Z", "version": "W/\"1\""}
    })
}

fn group() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "6e9f2d3f-0000-4000-8000-000000000002",
        "externalId": "Developers",
        "displayName": "Developers",
        "members": [{"value": "5d8f1c2e-0000-4000-8000-000000000001", "display": "Alex"}],
        "meta": {"resourceType": "Group", "version": "W/\"1\""}
    })
}

fn attributes_belong(condition: &ScimCondition, kind: ResourceKind) -> bool {
    match condition {
        ScimCondition::And(a, b) | ScimCondition::Or(a, b) => attributes_belong(a, kind) && attributes_belong(b, kind),
        ScimCondition::Equals(attribute, _) => attribute.belongs_to(kind),
    }
}

/// A SCIM filter: parse it; a filter that parses is translated for the store's indexes (naming
/// only attributes the resource type has) and evaluated, and its negation must evaluate to the
/// opposite.
pub fn scim_filter(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(parsed) = filter::parse(text) else { return };
    assert!(text.len() <= filter::MAX_FILTER_LEN, "an over-long filter parsed");
    for (rt, resource) in [(USERS, user()), (GROUPS, group())] {
        let kind = if rt == USERS { ResourceKind::User } else { ResourceKind::Group };
        if let Some(condition) = filter::indexed(&parsed, rt) {
            assert!(attributes_belong(&condition, kind), "`{text}` was pushed down with another type's attribute");
        }
        let matched = filter::matches(&parsed, &resource, FilterScope::Resource(rt));
        if let Ok(negated) = filter::parse(&format!("not ({text})")) {
            let negation = filter::matches(&negated, &resource, FilterScope::Resource(rt));
            assert_ne!(matched, negation, "`{text}` and its negation agree on a {}", rt.name);
        }
    }
}

/// A PATCH: a body that is JSON is applied as a whole PatchOp to a user and a group; any
/// other text is used as an operation's `path`, with a string, an object and no value.
pub fn scim_patch(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(request) = serde_json::from_str::<PatchRequest>(text) {
        apply(USERS, user(), request.clone());
        apply(GROUPS, group(), request);
        return;
    }
    let _ = filter::parse_path(text);
    for value in [Some(json!("x")), Some(json!({"value": "v", "type": "work"})), None] {
        for op in ["add", "replace", "remove"] {
            let request = json!({
                "schemas": [patch::PATCH_OP],
                "Operations": [{"op": op, "path": text, "value": value}]
            });
            let Ok(request) = serde_json::from_value::<PatchRequest>(request) else { continue };
            apply(USERS, user(), request.clone());
            apply(GROUPS, group(), request);
        }
    }
}

fn apply(rt: ResourceType, resource: Value, request: PatchRequest) {
    let Value::Object(mut body) = resource else { return };
    if patch::apply(rt, &mut body, request).is_ok() {
        // What is stored must serialise back to JSON that reads as the same object.
        let text = serde_json::to_string(&body).unwrap_or_default();
        let back: Map<String, Value> = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(back, body, "a patched {} does not survive a JSON round trip", rt.name);
    }
}

/// A CSV file: read and validate it; the counts must add up and the claims must be distinct.
pub fn csv_rows(data: &[u8]) {
    let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47".parse().unwrap_or_else(|_| unreachable!());
    let tab_separated = data.first().is_some_and(|b| b & 1 == 1);
    let options = ReadOptions { tenant, tab_separated, on_progress: None };
    let Ok(contents) = csv::read(data, options) else { return };
    let s = &contents.summary;
    assert_eq!(s.valid, contents.claims.len() as u64);
    assert_eq!(s.valid + s.duplicates + s.disabled + s.invalid_rows, s.rows, "counts do not add up: {s:?}");
    assert!(contents.invalid.iter().all(|row| row.line >= 2), "a problem reported on the header line or before");
    let mut oids = HashSet::new();
    let mut emails = HashSet::new();
    for claim in &contents.claims {
        assert!(oids.insert(claim.oid), "{} is claimed twice", claim.oid);
        assert!(emails.insert(claim.email.as_str().to_lowercase()), "{} is claimed twice", claim.email.as_str());
    }
}
