//! Resource bodies: input normalised to the schema (canonical attribute names, booleans from
//! Entra's `"True"`/`"False"`, read-only attributes dropped, unknown attributes kept whole),
//! output rendered with `id` and `meta`, and `attributes` / `excludedAttributes` applied.

use serde_json::{Map, Value};

use super::error::ScimError;
use super::filter::{get_ci, AttrPath};
use super::schema::{Attribute, Mutability, ResourceType, Returned, Type, REGISTRY};
use crate::store::StoredResource;

/// Normalises a POST or PUT body. The result holds no `id` or `meta`; `schemas` lists the core
/// schema and the extensions present.
pub fn normalize(rt: ResourceType, input: Value) -> Result<Map<String, Value>, ScimError> {
    let Value::Object(input) = input else {
        return Err(ScimError::invalid_syntax("the body must be a JSON object"));
    };
    let mut out = Map::new();
    for (key, value) in input {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if let Some(urn) = rt.extension(&key) {
            let Some(schema) = REGISTRY.schema(urn) else { continue };
            let Value::Object(fields) = value else {
                return Err(ScimError::invalid_value(format!("`{urn}` must be an object")));
            };
            let mut extension = Map::new();
            for (name, value) in fields.into_iter().filter(|(k, _)| !k.eq_ignore_ascii_case("schemas")) {
                match schema.attribute(&name) {
                    Some(attribute) => set_normalized(&mut extension, attribute, value)?,
                    None => {
                        extension.insert(name, value);
                    }
                }
            }
            if !extension.is_empty() {
                out.insert(urn.to_owned(), Value::Object(extension));
            }
            continue;
        }
        match rt.resolve(None, &key) {
            Some(resolved) => set_normalized(&mut out, resolved.attribute, value)?,
            // Attributes outside the schema (an Entra custom mapping) are kept as sent.
            None if !value.is_null() => {
                out.insert(key, value);
            }
            None => {}
        }
    }
    set_schemas(rt, &mut out);
    Ok(out)
}

/// Recomputes `schemas`: the core schema and each extension present.
pub fn set_schemas(rt: ResourceType, body: &mut Map<String, Value>) {
    let mut schemas = vec![Value::String(rt.core.to_owned())];
    for urn in rt.extensions {
        if body.get(*urn).is_some_and(|v| v.as_object().is_some_and(|o| !o.is_empty())) {
            schemas.push(Value::String((*urn).to_owned()));
        } else {
            body.remove(*urn);
        }
    }
    body.insert("schemas".into(), Value::Array(schemas));
}

/// Sets `attribute` in `target` from a client value; read-only and write-only attributes are
/// ignored (RFC 7644 §3.3: the service provider sets them), `null` unassigns.
pub fn set_normalized(target: &mut Map<String, Value>, attribute: &Attribute, value: Value) -> Result<(), ScimError> {
    if matches!(attribute.mutability, Mutability::ReadOnly | Mutability::WriteOnly) {
        return Ok(());
    }
    let value = normalize_value(attribute, value)?;
    if value.is_null() || value.as_array().is_some_and(Vec::is_empty) {
        target.remove(&attribute.name);
    } else {
        target.insert(attribute.name.clone(), value);
    }
    Ok(())
}

/// A client value for `attribute`: an array for multi-valued ones (a single value is wrapped).
pub fn normalize_value(attribute: &Attribute, value: Value) -> Result<Value, ScimError> {
    match value {
        Value::Null => Ok(Value::Null),
        Value::Array(items) if attribute.multi_valued => Ok(Value::Array(
            items
                .into_iter()
                .filter(|v| !v.is_null())
                .map(|v| normalize_single(attribute, v))
                .collect::<Result<_, _>>()?,
        )),
        Value::Array(_) => Err(ScimError::invalid_value(format!("`{}` takes a single value", attribute.name))),
        single if attribute.multi_valued => Ok(Value::Array(vec![normalize_single(attribute, single)?])),
        single => normalize_single(attribute, single),
    }
}

/// One value of `attribute` (one element, for multi-valued attributes).
pub fn normalize_single(attribute: &Attribute, value: Value) -> Result<Value, ScimError> {
    let wrong = |expected: &str| {
        ScimError::invalid_value(format!("`{}` must be {expected}, not {}", attribute.name, describe(&value)))
    };
    match attribute.kind {
        Type::Boolean => match &value {
            Value::Bool(_) => Ok(value),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            _ => Err(wrong("a boolean")),
        },
        Type::Integer => match &value {
            Value::Number(n) if n.is_i64() => Ok(value),
            _ => Err(wrong("an integer")),
        },
        Type::Decimal => match &value {
            Value::Number(_) => Ok(value),
            _ => Err(wrong("a number")),
        },
        Type::String | Type::Reference | Type::DateTime | Type::Binary => match &value {
            Value::String(_) => Ok(value),
            _ => Err(wrong("a string")),
        },
        Type::Complex => {
            let Value::Object(fields) = value else { return Err(wrong("an object")) };
            let mut out = Map::new();
            for (name, value) in fields {
                match attribute.sub(&name) {
                    // A null sub-attribute is simply absent.
                    Some(_) if value.is_null() => {}
                    Some(sub) => {
                        out.insert(sub.name.clone(), normalize_single(sub, value)?);
                    }
                    None if !value.is_null() => {
                        out.insert(name, value);
                    }
                    None => {}
                }
            }
            Ok(Value::Object(out))
        }
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The ETag of a version.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// The full resource as returned: body + `id` + `meta`.
pub fn render(rt: ResourceType, stored: &StoredResource, base_url: &str) -> Result<Value, ScimError> {
    let mut body: Map<String, Value> =
        serde_json::from_str(&stored.resource).map_err(|e| ScimError::internal(format!("stored resource: {e}")))?;
    body.insert("id".into(), Value::String(stored.id.clone()));
    body.insert(
        "meta".into(),
        serde_json::json!({
            "resourceType": rt.name,
            "created": stored.created_at.to_string(),
            "lastModified": stored.updated_at.to_string(),
            "location": format!("{base_url}/{}/{}", rt.endpoint, stored.id),
            "version": etag(stored.version),
        }),
    );
    Ok(Value::Object(body))
}

/// Parses `attributes=a,b.c` into paths.
pub fn attribute_list(text: Option<&str>) -> Result<Vec<AttrPath>, ScimError> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else { return Ok(Vec::new()) };
    text.split(',')
        .map(|part| {
            super::filter::parse_path(part.trim())
                .ok()
                .filter(|p| p.filter.is_none())
                .map(|p| p.attr)
                .ok_or_else(|| ScimError::invalid_value(format!("`{}` is not an attribute name", part.trim())))
        })
        .collect()
}

/// Applies `attributes` (only these, plus those always returned) or `excludedAttributes`.
pub fn project(rt: ResourceType, resource: Value, attributes: &[AttrPath], excluded: &[AttrPath]) -> Value {
    let Value::Object(mut body) = resource else { return resource };
    if !attributes.is_empty() {
        let mut kept = Map::new();
        for always in ["schemas", "id"] {
            if let Some(v) = body.get(always) {
                kept.insert(always.to_owned(), v.clone());
            }
        }
        for path in attributes {
            copy_path(rt, &body, &mut kept, path);
        }
        return Value::Object(kept);
    }
    for path in excluded {
        remove_path(rt, &mut body, path);
    }
    Value::Object(body)
}

/// The container (top level or an extension object) and canonical name a path refers to.
fn locate(rt: ResourceType, path: &AttrPath) -> Option<(Option<&'static str>, String, Option<&'static Attribute>)> {
    let extension = match &path.urn {
        None => None,
        Some(urn) => match rt.extension(urn) {
            Some(ext) => Some(ext),
            None if urn.eq_ignore_ascii_case(rt.core) => None,
            // `attributes=urn:...:enterprise:2.0:User` names the whole extension.
            None => return None,
        },
    };
    let attribute = rt.resolve(extension, &path.name).map(|r| r.attribute);
    let name = attribute.map(|a| a.name.clone()).unwrap_or_else(|| path.name.clone());
    Some((extension, name, attribute))
}

fn whole_extension(rt: ResourceType, path: &AttrPath) -> Option<&'static str> {
    let full = match (&path.urn, &path.sub) {
        (Some(urn), None) => format!("{urn}:{}", path.name),
        _ => return None,
    };
    rt.extension(&full)
}

fn copy_path(rt: ResourceType, from: &Map<String, Value>, to: &mut Map<String, Value>, path: &AttrPath) {
    if let Some(urn) = whole_extension(rt, path) {
        if let Some(v) = from.get(urn) {
            to.insert(urn.to_owned(), v.clone());
        }
        return;
    }
    let Some((extension, _, _)) = locate(rt, path) else { return };
    let source = match extension {
        Some(urn) => from.get(urn).and_then(Value::as_object),
        None => Some(from),
    };
    // Copied under the name the resource has it by, whatever case the request spelled it in:
    // `attributes=SCHEMAS` must not add a second `schemas`.
    let Some((name, value)) = source
        .and_then(|s| s.iter().find(|(key, _)| key.eq_ignore_ascii_case(&path.name)))
        .map(|(k, v)| (k.clone(), v.clone()))
    else {
        return;
    };
    let value = match &path.sub {
        None => value,
        Some(sub) => match value {
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .filter_map(|item| get_ci(item, sub).map(|v| serde_json::json!({ sub.clone(): v.clone() })))
                    .collect(),
            ),
            item => match get_ci(&item, sub) {
                Some(v) => serde_json::json!({ sub.clone(): v.clone() }),
                None => return,
            },
        },
    };
    let target = match extension {
        Some(urn) => {
            let entry = to.entry(urn.to_owned()).or_insert_with(|| Value::Object(Map::new()));
            match entry.as_object_mut() {
                Some(object) => object,
                None => return,
            }
        }
        None => to,
    };
    match (target.get_mut(&name), value) {
        (Some(Value::Object(existing)), Value::Object(more)) => existing.extend(more),
        (_, value) => {
            target.insert(name, value);
        }
    }
}

fn remove_path(rt: ResourceType, body: &mut Map<String, Value>, path: &AttrPath) {
    if let Some(urn) = whole_extension(rt, path) {
        body.remove(urn);
        return;
    }
    let Some((extension, name, attribute)) = locate(rt, path) else { return };
    if attribute.is_some_and(|a| a.returned == Returned::Always) || name == "schemas" {
        return;
    }
    let container = match extension {
        Some(urn) => match body.get_mut(urn).and_then(Value::as_object_mut) {
            Some(object) => object,
            None => return,
        },
        None => body,
    };
    match &path.sub {
        None => {
            container.remove(&name);
        }
        Some(sub) => match container.get_mut(&name) {
            Some(Value::Array(items)) => {
                for item in items.iter_mut().filter_map(Value::as_object_mut) {
                    item.retain(|k, _| !k.eq_ignore_ascii_case(sub));
                }
            }
            Some(Value::Object(item)) => item.retain(|k, _| !k.eq_ignore_ascii_case(sub)),
            _ => {}
        },
    }
}
