//! The SCIM schemas c7sync serves and enforces: RFC 7643's core User (with the enterprise
//! extension) and Group. `schemas.json` is the schema representation of RFC 7643 §8.7.1; what
//! `/Schemas` advertises is exactly what the rest of this module works from.

use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::Value;

/// The core User schema.
pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The core Group schema.
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The enterprise User extension.
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// An attribute's type (RFC 7643 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Type {
    /// Text.
    String,
    /// true/false.
    Boolean,
    /// Decimal number.
    Decimal,
    /// Integer.
    Integer,
    /// xsd:dateTime text.
    DateTime,
    /// Base64 text.
    Binary,
    /// A URI.
    Reference,
    /// Has sub-attributes.
    Complex,
}

/// Whether clients may write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Mutability {
    /// Set by the service provider only.
    ReadOnly,
    /// Normal.
    ReadWrite,
    /// Set once.
    Immutable,
    /// Never returned (passwords).
    WriteOnly,
}

/// When it is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Returned {
    /// Always, even when not asked for.
    Always,
    /// Never.
    Never,
    /// Unless excluded.
    Default,
    /// Only when asked for.
    Request,
}

/// One attribute definition.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attribute {
    /// Its name, in canonical case.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: Type,
    /// An array of values.
    pub multi_valued: bool,
    /// String comparison is case-sensitive.
    #[serde(default)]
    pub case_exact: bool,
    /// Who may write it.
    #[serde(default = "read_write")]
    pub mutability: Mutability,
    /// When it is returned.
    #[serde(default = "returned_default")]
    pub returned: Returned,
    /// Sub-attributes of a complex attribute.
    #[serde(default)]
    pub sub_attributes: Vec<Attribute>,
}

fn read_write() -> Mutability {
    Mutability::ReadWrite
}

fn returned_default() -> Returned {
    Returned::Default
}

impl Attribute {
    /// The sub-attribute called `name` (any case).
    pub fn sub(&self, name: &str) -> Option<&Attribute> {
        self.sub_attributes.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }
}

/// One schema.
#[derive(Debug, Clone, Deserialize)]
pub struct Schema {
    /// Its URN.
    pub id: String,
    /// Its top-level attributes.
    pub attributes: Vec<Attribute>,
}

impl Schema {
    /// The attribute called `name` (any case).
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }
}

/// The schemas as served (`/Schemas`) and as parsed.
pub struct Registry {
    /// Parsed.
    pub schemas: Vec<Schema>,
    /// As in `schemas.json`.
    pub documents: Vec<Value>,
    /// `id`, `externalId` and `meta` (RFC 7643 §3.1), common to every resource.
    pub common: Vec<Attribute>,
}

/// Attributes every resource has.
const COMMON: &str = r#"[
  {"name": "id", "type": "string", "multiValued": false, "caseExact": true, "mutability": "readOnly", "returned": "always"},
  {"name": "externalId", "type": "string", "multiValued": false, "caseExact": true, "mutability": "readWrite", "returned": "default"},
  {"name": "meta", "type": "complex", "multiValued": false, "mutability": "readOnly", "returned": "default", "subAttributes": [
    {"name": "resourceType", "type": "string", "multiValued": false, "caseExact": true, "mutability": "readOnly"},
    {"name": "created", "type": "dateTime", "multiValued": false, "mutability": "readOnly"},
    {"name": "lastModified", "type": "dateTime", "multiValued": false, "mutability": "readOnly"},
    {"name": "location", "type": "reference", "multiValued": false, "caseExact": true, "mutability": "readOnly"},
    {"name": "version", "type": "string", "multiValued": false, "caseExact": true, "mutability": "readOnly"}
  ]}
]"#;

/// The registry, parsed once.
pub static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let text = include_str!("schemas.json");
    // Both are constants of this crate, checked by the tests below; a parse failure here is a
    // build defect, so fall back to empty rather than panic in a request.
    let documents: Vec<Value> = serde_json::from_str(text).unwrap_or_default();
    let schemas = documents.iter().filter_map(|d| serde_json::from_value(d.clone()).ok()).collect();
    let common = serde_json::from_str(COMMON).unwrap_or_default();
    Registry { schemas, documents, common }
});

impl Registry {
    /// The schema with this URN (any case).
    pub fn schema(&self, urn: &str) -> Option<&Schema> {
        self.schemas.iter().find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// A common attribute (`id`, `externalId`, `meta`).
    pub fn common(&self, name: &str) -> Option<&Attribute> {
        self.common.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }
}

/// A kind of resource: its core schema and extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceType {
    /// `User` or `Group`.
    pub name: &'static str,
    /// `/Users` or `/Groups`.
    pub endpoint: &'static str,
    /// Core schema URN.
    pub core: &'static str,
    /// Extension URNs.
    pub extensions: &'static [&'static str],
}

/// Users.
pub const USERS: ResourceType = ResourceType { name: "User", endpoint: "Users", core: USER, extensions: &[ENTERPRISE] };
/// Groups.
pub const GROUPS: ResourceType = ResourceType { name: "Group", endpoint: "Groups", core: GROUP, extensions: &[] };

/// Where an attribute lives in a resource's JSON.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'a> {
    /// `None` for core and common attributes (top level); the extension URN otherwise.
    pub extension: Option<&'static str>,
    /// The definition.
    pub attribute: &'a Attribute,
}

impl ResourceType {
    /// The core schema.
    pub fn core_schema(&self) -> Option<&'static Schema> {
        REGISTRY.schema(self.core)
    }

    /// The extension URN that `text` names (any case).
    pub fn extension(&self, text: &str) -> Option<&'static str> {
        self.extensions.iter().copied().find(|e| e.eq_ignore_ascii_case(text))
    }

    /// A top-level attribute by name, in `extension` or the core schema (common ones too).
    pub fn resolve(&self, extension: Option<&'static str>, name: &str) -> Option<Resolved<'static>> {
        match extension {
            Some(urn) => REGISTRY.schema(urn)?.attribute(name).map(|attribute| Resolved { extension, attribute }),
            None => REGISTRY
                .common(name)
                .or_else(|| self.core_schema()?.attribute(name))
                .map(|attribute| Resolved { extension: None, attribute }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_schemas_parse_whole() {
        assert_eq!(REGISTRY.documents.len(), 3);
        assert_eq!(REGISTRY.schemas.len(), 3, "every served schema is also enforced");
        assert_eq!(REGISTRY.common.len(), 3);
        let user = USERS.core_schema().unwrap();
        assert!(user.attribute("USERNAME").is_some_and(|a| !a.case_exact));
        assert!(user.attribute("emails").is_some_and(|a| a.multi_valued && a.sub("Value").is_some()));
        assert_eq!(user.attribute("password").map(|a| a.returned), Some(Returned::Never));
    }
}
