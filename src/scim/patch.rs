//! PATCH (RFC 7644 §3.5.2) over a stored body, tolerant of every form Entra sends:
//! operations in any case, `"True"`/`"False"` booleans, no-path values with plain, dotted and
//! URN-qualified keys, `emails[type eq "work"].value` that creates the entry when none
//! matches, and `Remove` of `members` with a value list that removes only those members.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::ScimError;
use super::filter::{matches, parse_path, Filter, FilterScope, Literal, Op, PatchPath};
use super::resource::{normalize_single, normalize_value, set_schemas};
use super::schema::{Attribute, Mutability, ResourceType, Type};

/// The PatchOp message schema.
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Operations per request, at most (Entra sends a handful; a group's members arrive in
/// batches).
pub const MAX_OPERATIONS: usize = 10_000;

/// A PATCH body.
#[derive(Debug, Clone, Deserialize)]
pub struct PatchRequest {
    /// Must include the PatchOp URN.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// The operations, applied in order.
    #[serde(rename = "Operations", alias = "operations")]
    pub operations: Vec<Operation>,
}

/// One operation.
#[derive(Debug, Clone, Deserialize)]
pub struct Operation {
    /// add, replace or remove, any case.
    pub op: String,
    /// The target; absent means the resource itself.
    #[serde(default)]
    pub path: Option<String>,
    /// The value.
    #[serde(default)]
    pub value: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Add,
    Replace,
    Remove,
}

/// Applies every operation to `body`, or none: the caller stores the result only on success.
pub fn apply(rt: ResourceType, body: &mut Map<String, Value>, request: PatchRequest) -> Result<(), ScimError> {
    if !request.schemas.iter().any(|s| s.eq_ignore_ascii_case(PATCH_OP)) {
        return Err(ScimError::invalid_syntax(format!("a PATCH body must list the schema {PATCH_OP}")));
    }
    if request.operations.len() > MAX_OPERATIONS {
        return Err(ScimError::invalid_value(format!("more than {MAX_OPERATIONS} operations in one PATCH")));
    }
    for operation in request.operations {
        let kind = match operation.op.to_ascii_lowercase().as_str() {
            "add" => Kind::Add,
            "replace" => Kind::Replace,
            "remove" => Kind::Remove,
            other => {
                return Err(ScimError::invalid_value(format!("`{other}` is not a PATCH op (add, replace, remove)")))
            }
        };
        match operation.path.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
            // The whole extension: remove drops it; add and replace set each attribute given.
            Some(path) if rt.extension(path).is_some() => {
                let urn = rt.extension(path).unwrap_or_default();
                match (kind, operation.value) {
                    (Kind::Remove, _) => {
                        body.remove(urn);
                    }
                    (_, Some(Value::Object(inner))) => {
                        for (name, value) in inner.into_iter().filter(|(k, _)| !k.eq_ignore_ascii_case("schemas")) {
                            let full = format!("{urn}:{name}");
                            let parsed = parse_path(&full)
                                .map_err(|e| ScimError::invalid_path(format!("attribute `{full}`: {e}")))?;
                            apply_one(rt, body, kind, &parsed, &full, Some(value))?;
                        }
                    }
                    _ => return Err(ScimError::invalid_value(format!("`{urn}` takes an object value"))),
                }
            }
            Some(path) => {
                let parsed = parse_path(path).map_err(|e| ScimError::invalid_path(format!("path `{path}`: {e}")))?;
                apply_one(rt, body, kind, &parsed, path, operation.value)?;
            }
            None if kind == Kind::Remove => {
                return Err(ScimError::no_target("a remove operation needs a path"));
            }
            None => {
                let Some(Value::Object(fields)) = operation.value else {
                    return Err(ScimError::invalid_value("an operation without a path needs an object value"));
                };
                for (key, value) in fields {
                    if key.eq_ignore_ascii_case("schemas") {
                        continue;
                    }
                    // A whole extension: each of its attributes is a target of its own.
                    if let Some(urn) = rt.extension(&key) {
                        let Value::Object(inner) = value else {
                            return Err(ScimError::invalid_value(format!("`{urn}` must be an object")));
                        };
                        for (name, value) in inner.into_iter().filter(|(k, _)| !k.eq_ignore_ascii_case("schemas")) {
                            let full = format!("{urn}:{name}");
                            let parsed = parse_path(&full)
                                .map_err(|e| ScimError::invalid_path(format!("attribute `{full}`: {e}")))?;
                            apply_one(rt, body, kind, &parsed, &full, Some(value))?;
                        }
                        continue;
                    }
                    let parsed =
                        parse_path(&key).map_err(|e| ScimError::invalid_path(format!("attribute `{key}`: {e}")))?;
                    apply_one(rt, body, kind, &parsed, &key, Some(value))?;
                }
            }
        }
    }
    set_schemas(rt, body);
    Ok(())
}

fn apply_one(
    rt: ResourceType,
    body: &mut Map<String, Value>,
    kind: Kind,
    path: &PatchPath,
    text: &str,
    value: Option<Value>,
) -> Result<(), ScimError> {
    let extension = match path.attr.urn.as_deref() {
        None => None,
        Some(urn) if urn.eq_ignore_ascii_case(rt.core) => None,
        Some(urn) => {
            Some(rt.extension(urn).ok_or_else(|| ScimError::invalid_path(format!("unknown schema in `{text}`")))?)
        }
    };
    let attribute = rt
        .resolve(extension, &path.attr.name)
        .map(|r| r.attribute)
        .ok_or_else(|| ScimError::invalid_path(format!("`{text}`: no such attribute")))?;
    if matches!(attribute.mutability, Mutability::ReadOnly) {
        return Err(ScimError::mutability(format!("`{}` is read-only", attribute.name)));
    }
    if attribute.mutability == Mutability::WriteOnly {
        // Passwords: accepted and discarded, never stored.
        return Ok(());
    }
    let value = match (kind, value) {
        (Kind::Remove, value) => value,
        (_, Some(value)) => Some(value),
        (_, None) => return Err(ScimError::invalid_value(format!("`{text}`: add and replace need a value"))),
    };
    let result = {
        let container = match extension {
            None => &mut *body,
            Some(urn) => {
                let entry = body.entry(urn.to_owned()).or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                match entry.as_object_mut() {
                    Some(object) => object,
                    None => return Ok(()),
                }
            }
        };
        let sub = match (&path.attr.sub, &path.sub_after_filter) {
            (Some(sub), _) | (None, Some(sub)) => Some(attribute.sub(sub).ok_or_else(|| {
                ScimError::invalid_path(format!("`{text}`: `{}` has no sub-attribute `{sub}`", attribute.name))
            })?),
            (None, None) => None,
        };
        if path.filter.is_some() && !attribute.multi_valued && attribute.kind != Type::Complex {
            return Err(ScimError::invalid_path(format!("`{text}`: a value filter needs a multi-valued attribute")));
        }
        match &path.filter {
            Some(filter) => with_filter(container, attribute, kind, filter, sub, value),
            None => match sub {
                Some(sub) => on_sub_attribute(container, attribute, kind, sub, value),
                None => on_attribute(container, attribute, kind, value),
            },
        }
    };
    result?;
    if let Some(urn) = extension {
        if body.get(urn).and_then(Value::as_object).is_some_and(Map::is_empty) {
            body.remove(urn);
        }
    }
    Ok(())
}

/// `path: "emails"`, `"active"`, `"name"`, `"members"`.
fn on_attribute(
    container: &mut Map<String, Value>,
    attribute: &Attribute,
    kind: Kind,
    value: Option<Value>,
) -> Result<(), ScimError> {
    let name = attribute.name.clone();
    match kind {
        Kind::Remove => {
            match (value, container.get_mut(&name)) {
                // Entra: {"op":"Remove","path":"members","value":[{"value":"id"}]} removes only
                // those members, never all.
                (Some(value), Some(Value::Array(items))) if attribute.multi_valued => {
                    let doomed = normalize_value(attribute, value)?;
                    let doomed: HashSet<String> =
                        doomed.as_array().map(|d| d.iter().map(identity).collect()).unwrap_or_default();
                    items.retain(|item| !doomed.contains(&identity(item)));
                    if items.is_empty() {
                        container.remove(&name);
                    }
                }
                _ => {
                    container.remove(&name);
                }
            }
            Ok(())
        }
        Kind::Add | Kind::Replace => {
            let value = normalize_value(attribute, value.unwrap_or(Value::Null))?;
            if value.is_null() {
                container.remove(&name);
                return Ok(());
            }
            match (kind, container.get_mut(&name), value) {
                (Kind::Add, Some(Value::Array(items)), Value::Array(new)) => {
                    // Sets, not scans: a group PATCH can carry thousands of members.
                    let mut present: HashSet<String> = items.iter().map(identity).collect();
                    for item in new {
                        if present.insert(identity(&item)) {
                            items.push(item);
                        }
                    }
                }
                // A complex attribute: the sub-attributes given replace theirs; others stay.
                (_, Some(Value::Object(existing)), Value::Object(new)) if !attribute.multi_valued => {
                    existing.extend(new);
                }
                (_, _, value) => {
                    container.insert(name.clone(), value);
                }
            }
            if container.get(&name).and_then(Value::as_array).is_some_and(Vec::is_empty) {
                container.remove(&name);
            }
            Ok(())
        }
    }
}

/// `path: "name.givenName"`, `"emails.value"` (every value), `"manager.value"`.
fn on_sub_attribute(
    container: &mut Map<String, Value>,
    attribute: &Attribute,
    kind: Kind,
    sub: &Attribute,
    value: Option<Value>,
) -> Result<(), ScimError> {
    let name = attribute.name.clone();
    let new = match kind {
        Kind::Remove => None,
        _ => Some(normalize_single(sub, value.unwrap_or(Value::Null))?),
    };
    let entry = container.entry(name.clone()).or_insert_with(|| {
        if attribute.multi_valued {
            Value::Array(Vec::new())
        } else {
            Value::Object(Map::new())
        }
    });
    match entry {
        Value::Array(items) => {
            if items.is_empty() {
                if let Some(new) = &new {
                    items.push(Value::Object(Map::from_iter([(sub.name.clone(), new.clone())])));
                }
            } else {
                for item in items.iter_mut().filter_map(Value::as_object_mut) {
                    set_or_remove(item, &sub.name, new.clone());
                }
            }
        }
        Value::Object(item) => set_or_remove(item, &sub.name, new),
        other => {
            *other = Value::Object(Map::new());
            if let (Value::Object(item), Some(new)) = (other, new) {
                item.insert(sub.name.clone(), new);
            }
        }
    }
    prune(container, &name);
    Ok(())
}

/// `path: "emails[type eq \"work\"].value"`, `"members[value eq \"id\"]"`.
fn with_filter(
    container: &mut Map<String, Value>,
    attribute: &Attribute,
    kind: Kind,
    filter: &Filter,
    sub: Option<&Attribute>,
    value: Option<Value>,
) -> Result<(), ScimError> {
    let name = attribute.name.clone();
    let scope = FilterScope::Within(attribute);
    let new = match (kind, sub) {
        (Kind::Remove, _) => None,
        (_, Some(sub)) => Some(normalize_single(sub, value.unwrap_or(Value::Null))?),
        (_, None) => Some(normalize_single(attribute, value.unwrap_or(Value::Null))?),
    };
    let entry = container.entry(name.clone()).or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Object(_) = entry {
        // A single complex attribute filtered like a multi-valued one: treat it as a list of one.
        *entry = Value::Array(vec![entry.take()]);
    }
    let Value::Array(items) = entry else {
        return Err(ScimError::invalid_path(format!("`{name}` holds no values to filter")));
    };
    let hits: Vec<usize> = (0..items.len()).filter(|&i| matches(filter, &items[i], scope)).collect();
    match (kind, new) {
        (Kind::Remove, _) => {
            if let Some(sub) = sub {
                for &i in &hits {
                    if let Some(item) = items[i].as_object_mut() {
                        item.remove(&sub.name);
                    }
                }
            } else {
                let mut index = 0;
                items.retain(|_| {
                    let keep = !hits.contains(&index);
                    index += 1;
                    keep
                });
            }
        }
        (_, Some(new)) if hits.is_empty() => {
            // Entra's `emails[type eq "work"].value` on a user without a work address: create it
            // from the filter's equalities.
            let mut created = Map::new();
            seed_from_filter(filter, &mut created);
            match (sub, new) {
                (Some(sub), new) => {
                    created.insert(sub.name.clone(), new);
                }
                (None, Value::Object(fields)) => created.extend(fields),
                (None, _) => {}
            }
            items.push(Value::Object(created));
        }
        (kind, Some(new)) => {
            for &i in &hits {
                match (sub, &new, items[i].as_object_mut()) {
                    (Some(sub), new, Some(item)) => {
                        item.insert(sub.name.clone(), new.clone());
                    }
                    (None, Value::Object(fields), Some(item)) if kind == Kind::Add => item.extend(fields.clone()),
                    (None, new, _) => items[i] = new.clone(),
                    _ => {}
                }
            }
        }
        (_, None) => {}
    }
    prune(container, &name);
    Ok(())
}

/// `type eq "work" and primary eq true` → `{"type": "work", "primary": true}`.
fn seed_from_filter(filter: &Filter, into: &mut Map<String, Value>) {
    match filter {
        Filter::And(a, b) => {
            seed_from_filter(a, into);
            seed_from_filter(b, into);
        }
        Filter::Compare(path, Op::Eq, literal) if path.sub.is_none() => {
            let value = match literal {
                Literal::Str(s) => Value::String(s.clone()),
                Literal::Bool(b) => Value::Bool(*b),
                Literal::Num(n) => serde_json::Number::from_f64(*n).map(Value::Number).unwrap_or(Value::Null),
                Literal::Null => Value::Null,
            };
            if !value.is_null() {
                into.insert(path.name.clone(), value);
            }
        }
        _ => {}
    }
}

fn set_or_remove(item: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    match value {
        Some(Value::Null) | None => {
            item.remove(key);
        }
        Some(value) => {
            item.insert(key.to_owned(), value);
        }
    }
}

/// Drops an attribute left empty (`[]`, `{}`, or an array of empty objects).
fn prune(container: &mut Map<String, Value>, name: &str) {
    let empty = match container.get_mut(name) {
        Some(Value::Array(items)) => {
            items.retain(|item| !item.as_object().is_some_and(Map::is_empty));
            items.is_empty()
        }
        Some(Value::Object(object)) => object.is_empty(),
        _ => false,
    };
    if empty {
        container.remove(name);
    }
}

/// What makes two values of a multi-valued attribute the same: their `value` (members,
/// emails), else the whole value.
fn identity(item: &Value) -> String {
    match item.get("value") {
        Some(value) => format!("v:{value}"),
        None => format!("w:{item}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::{GROUPS, USERS};
    use serde_json::json;

    fn patch(rt: ResourceType, body: Value, operations: Value) -> Result<Value, ScimError> {
        let Value::Object(mut body) = body else { panic!("object") };
        let request: PatchRequest =
            serde_json::from_value(json!({ "schemas": [PATCH_OP], "Operations": operations })).unwrap();
        apply(rt, &mut body, request)?;
        Ok(Value::Object(body))
    }

    fn user() -> Value {
        json!({"userName": "ada@contoso.com", "active": true, "emails": [{"value": "ada@contoso.com", "type": "work", "primary": true}]})
    }

    #[test]
    fn entra_replace_forms_with_string_booleans() {
        let out = patch(USERS, user(), json!([{"op": "Replace", "path": "active", "value": "False"}])).unwrap();
        assert_eq!(out["active"], false);
        let out = patch(
            USERS,
            user(),
            json!([{"op": "replace", "value": {
                "active": "True", "displayName": "Ada L", "name.givenName": "Ada",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "R&D",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "42"}
            }}]),
        )
        .unwrap();
        assert_eq!((out["active"].clone(), out["displayName"].clone()), (json!(true), json!("Ada L")));
        assert_eq!(out["name"]["givenName"], "Ada");
        let enterprise = &out["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"];
        assert_eq!(
            (enterprise["department"].clone(), enterprise["employeeNumber"].clone()),
            (json!("R&D"), json!("42"))
        );
        assert!(out["schemas"].as_array().unwrap().len() == 2);
    }

    #[test]
    fn a_work_email_path_creates_the_entry_when_none_matches() {
        let body = json!({"userName": "a@b.co"});
        let out =
            patch(USERS, body, json!([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "a@b.co"}]))
                .unwrap();
        assert_eq!(out["emails"], json!([{"type": "work", "value": "a@b.co"}]));
        let out = patch(
            USERS,
            out,
            json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "new@b.co"}]),
        )
        .unwrap();
        assert_eq!(out["emails"], json!([{"type": "work", "value": "new@b.co"}]));
    }

    #[test]
    fn group_member_removal_removes_only_the_named_members() {
        let group = json!({"displayName": "Devs", "members": [{"value": "a"}, {"value": "b"}, {"value": "c"}]});
        let out = patch(GROUPS, group.clone(), json!([{"op": "Remove", "path": "members", "value": [{"value": "b"}]}]))
            .unwrap();
        assert_eq!(out["members"], json!([{"value": "a"}, {"value": "c"}]));
        let out = patch(GROUPS, group.clone(), json!([{"op": "remove", "path": "members[value eq \"c\"]"}])).unwrap();
        assert_eq!(out["members"], json!([{"value": "a"}, {"value": "b"}]));
        let out = patch(
            GROUPS,
            group.clone(),
            json!([{"op": "add", "path": "members", "value": [{"value": "a"}, {"value": "d"}]}]),
        )
        .unwrap();
        assert_eq!(out["members"].as_array().unwrap().len(), 4, "no duplicate members");
        let out = patch(GROUPS, group, json!([{"op": "remove", "path": "members"}])).unwrap();
        assert!(out.get("members").is_none());
    }

    #[test]
    fn bad_operations_are_client_errors() {
        let cases = [
            (json!([{"op": "frobnicate", "path": "active", "value": true}]), "invalidValue"),
            (json!([{"op": "replace", "path": "nosuch", "value": 1}]), "invalidPath"),
            (json!([{"op": "replace", "path": "emails[type eq", "value": 1}]), "invalidPath"),
            (json!([{"op": "remove"}]), "noTarget"),
            (json!([{"op": "replace", "path": "id", "value": "x"}]), "mutability"),
            (json!([{"op": "replace", "path": "active", "value": "maybe"}]), "invalidValue"),
            (json!([{"op": "replace", "path": "name.nosuch", "value": "x"}]), "invalidPath"),
        ];
        for (operations, scim_type) in cases {
            let error = patch(USERS, user(), operations.clone()).unwrap_err();
            assert_eq!(error.scim_type, Some(scim_type), "{operations}: {}", error.detail);
        }
    }
}
