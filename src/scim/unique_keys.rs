//! Parses a JSON body, refusing one in which an object names the same attribute twice. SCIM
//! attribute names are case-insensitive (RFC 7643 §2.1), so `userName` and `USERNAME` are the
//! same attribute; a plain JSON parse would silently keep one of the two, and which one a
//! client meant cannot be known. One pass: the check is made while the value is built.
//!
//! The pass also counts values: a body of more than [`MAX_VALUES`] is refused while it is read,
//! so a 1 MiB body of tiny values cannot cost a parse of tens of MB (half a million array
//! elements took 31 MB each, and a burst of them stacked up in the allocator).

use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Most JSON values (scalars, arrays and objects) one body may hold: a PATCH adding 10,000
/// group members is about 20,000.
pub const MAX_VALUES: usize = 100_000;

/// The body as JSON. A repeated attribute or too many values is a data error (`is_data()`)
/// saying so; anything else wrong is serde_json's own syntax error.
pub fn parse(body: &[u8]) -> Result<Value, serde_json::Error> {
    let budget = Cell::new(MAX_VALUES);
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let Unique(value) = UniqueVisitor { budget: &budget }.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// A JSON value whose objects have no repeated keys.
struct Unique(Value);

/// Reads one value, spending one unit of the body's budget on it.
#[derive(Clone, Copy)]
struct UniqueVisitor<'b> {
    budget: &'b Cell<usize>,
}

impl<'de> DeserializeSeed<'de> for UniqueVisitor<'_> {
    type Value = Unique;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Unique, D::Error> {
        match self.budget.get().checked_sub(1) {
            Some(left) => self.budget.set(left),
            None => {
                return Err(de::Error::custom(format!(
                    "a SCIM request body is one JSON object of at most {MAX_VALUES} values; this one holds more"
                )))
            }
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueVisitor<'_> {
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
        while let Some(Unique(item)) = seq.next_element_seed(self)? {
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
            let Unique(value) = map.next_value_seed(self)?;
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
        assert!(parse(b"{} {}").unwrap_err().is_syntax(), "one value only");
    }

    #[test]
    fn bodies_of_too_many_values_are_refused_while_read() {
        let array = |n: usize| format!("{{\"a\": [{}0]}}", "0,".repeat(n - 1));
        // The object and the array count too.
        assert!(parse(array(super::MAX_VALUES - 2).as_bytes()).is_ok());
        let error = parse(array(super::MAX_VALUES - 1).as_bytes()).unwrap_err();
        assert!(error.is_data() && error.to_string().contains("at most 100000 values"), "{error}");
    }
}
