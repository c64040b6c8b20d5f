//! Refuses a JSON body in which one object names the same attribute twice. SCIM attribute
//! names are case-insensitive (RFC 7643 §2.1), so `userName` and `USERNAME` are the same
//! attribute; a JSON parser would silently keep one of the two, and which one a client meant
//! cannot be known.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// The first repeated attribute name in `body`, as an error message; `Ok` when there is none
/// (or when the body is not JSON at all, which the caller's parse reports).
pub fn check(body: &[u8]) -> Result<(), String> {
    match serde_json::from_slice::<Unique>(body) {
        Err(error) if error.is_data() => Err(error.to_string()),
        _ => Ok(()),
    }
}

/// Any JSON value, checked for repeated keys on the way.
struct Unique;

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

    fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_unit<E>(self) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
        while seq.next_element::<Unique>()?.is_some() {}
        Ok(Unique)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.to_lowercase()) {
                return Err(de::Error::custom(format!(
                    "`{key}` appears twice in one object (attribute names are case-insensitive)"
                )));
            }
            map.next_value::<Unique>()?;
        }
        Ok(Unique)
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn repeats_in_any_case_at_any_depth_are_refused() {
        assert!(check(br#"{"userName": "a", "active": true, "emails": [{"value": "x"}]}"#).is_ok());
        assert!(check(br#"{"userName": "a", "userName": "b"}"#).unwrap_err().contains("`userName` appears twice"));
        assert!(check(br#"{"userName": "a", "USERNAME": "b"}"#).is_err());
        assert!(check(br#"{"emails": [{"value": "x", "Value": "y"}]}"#).is_err());
        assert!(check(br#"{"a": {"b": 1}, "c": {"b": 2}}"#).is_ok(), "the same key in two objects is fine");
        assert!(check(b"not json").is_ok(), "left to the parser to report");
    }
}
