//! Parses a JSON body, refusing one in which an object names the same attribute twice. SCIM
//! attribute names are case-insensitive (RFC 7643 §2.1), so `userName` and `USERNAME` are the
//! same attribute; a plain JSON parse would silently keep one of the two, and which one a
//! client meant cannot be known. One pass: the check is made while the value is built.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The body as JSON. A repeated attribute is a data error (`is_data()`) naming it; anything
/// else wrong is serde_json's own syntax error.
pub fn parse(body: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<Unique>(body).map(|unique| unique.0)
}

/// A JSON value whose objects have no repeated keys.
struct Unique(Value);

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Unique;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Unique, E> {
        Ok(Unique(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Unique, E> {
        Ok(Unique(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Unique, E> {
        Ok(Unique(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Unique, E> {
        Ok(Unique(Value::from(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Unique, E> {
        Ok(Unique(Value::String(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Unique, E> {
        Ok(Unique(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<Unique, E> {
        Ok(Unique(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
        let mut items = Vec::new();
        while let Some(Unique(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Unique(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
        let mut seen = HashSet::new();
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.to_lowercase()) {
                return Err(de::Error::custom(format!(
                    "`{key}` appears twice in one object (attribute names are case-insensitive)"
                )));
            }
            let Unique(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Unique(Value::Object(object)))
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn repeats_in_any_case_at_any_depth_are_refused() {
        let body = br#"{"userName": "a", "active": true, "n": -1.5, "x": null, "emails": [{"value": "x"}]}"#;
        let parsed = parse(body).unwrap();
        assert_eq!(
            parsed,
            serde_json::from_slice::<serde_json::Value>(body).unwrap(),
            "the same value as a plain parse"
        );
        let twice = parse(br#"{"userName": "a", "userName": "b"}"#).unwrap_err();
        assert!(twice.is_data() && twice.to_string().contains("`userName` appears twice"), "{twice}");
        assert!(parse(br#"{"userName": "a", "USERNAME": "b"}"#).unwrap_err().is_data());
        assert!(parse(br#"{"emails": [{"value": "x", "Value": "y"}]}"#).unwrap_err().is_data());
        assert!(parse(br#"{"a": {"b": 1}, "c": {"b": 2}}"#).is_ok(), "the same key in two objects is fine");
        assert!(parse(b"not json").unwrap_err().is_syntax());
    }
}
