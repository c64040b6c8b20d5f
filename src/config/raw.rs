//! `c7sync.toml` exactly as written: serde structs that refuse unknown keys.
//! Validation into parsed types happens in the parent module.

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub database: Option<String>,
    pub server: Option<RawServer>,
    #[serde(default)]
    pub teamspaces: Vec<RawTeamspace>,
    pub delivery: Option<RawDelivery>,
}

/// `[server]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub max_connections: Option<usize>,
    pub public_url: Option<String>,
}

/// `[[teamspaces]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTeamspace {
    pub name: String,
    pub tenant_id: String,
    pub audience: String,
    pub required_scope: Option<String>,
    pub max_removals: Option<CountOrText>,
    pub authority_url: Option<String>,
    pub resource_metadata_url: Option<String>,
    #[serde(default)]
    pub sources: Vec<RawSource>,
}

/// `max_removals = 50` and `max_removals = "20%"` are both natural to write.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum CountOrText {
    Count(i64),
    Text(String),
}

/// `[[teamspaces.sources]]`, tagged by `kind`.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RawSource {
    Graph(RawGraphSource),
    Csv(RawCsvSource),
    Scim(RawScimSource),
}

/// `kind = "graph"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGraphSource {
    pub id: String,
    pub groups: Vec<String>,
    pub client_id: String,
    pub client_secret_env: String,
    pub schedule: Option<String>,
    pub timezone: Option<String>,
    #[serde(default)]
    pub include_disabled: bool,
    #[serde(default = "default_true")]
    pub include_guests: bool,
    pub graph_url: Option<String>,
    pub authority_url: Option<String>,
    pub mode: Option<String>,
    pub full_every: Option<String>,
}

/// `kind = "csv"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCsvSource {
    pub id: String,
    pub path: String,
    pub mode: Option<String>,
    pub schedule: Option<String>,
    pub timezone: Option<String>,
}

/// `kind = "scim"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScimSource {
    pub oid_attribute: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// `[delivery]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDelivery {
    pub webhook_url: String,
    pub signing_secret_env: String,
}

fn default_true() -> bool {
    true
}
