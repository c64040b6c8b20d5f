//! `c7sync.toml` → a validated [`Config`]: GUIDs parsed, cron expressions compiled, URLs
//! checked, names unique. Precedence: defaults, then the file, then env, then flags.

mod raw;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::domain::{MaxRemovals, SourceName, TeamspaceName, TenantId};

/// The default database: a SQLite file beside the config file.
pub const DEFAULT_DATABASE: &str = "sqlite://c7sync.db";
/// Entra's public-cloud authority, for token issuers and the Graph token endpoint.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// The default listen address for `c7sync serve`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";
/// The commented starter config `c7sync init` writes; also the README's sample.
pub const STARTER_CONFIG: &str = include_str!("../../samples/c7sync.toml");

/// The example file the starter config's csv source reads, written beside it by `c7sync init`
/// so that the first `c7sync sync` works before the user has an export of their own.
pub const STARTER_CSV: (&str, &str) = ("developers.csv", include_str!("../../samples/developers.csv"));

/// A configuration problem: exit code 2, with the file and the key named.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TOML syntax, a wrong type, or an unknown key (the parser names it, with line and column).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A value that parses but is not valid.
    #[error("{path}: `{key}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Dotted key path, e.g. `teamspaces[0].tenant_id`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// No config file where one was expected.
    #[error("no config file at {0}: pass --config PATH, set C7SYNC_CONFIG, or run `c7sync init`")]
    Missing(PathBuf),
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from (for messages).
    pub path: PathBuf,
    /// sqlx database URL after env and flag overrides.
    pub database: String,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[[teamspaces]]`, in file order, names unique.
    pub teamspaces: Vec<TeamspaceConfig>,
    /// `[delivery]`.
    pub delivery: Option<DeliveryConfig>,
}

/// One `[[teamspaces]]` table.
#[derive(Debug, Clone)]
pub struct TeamspaceConfig {
    /// The slug.
    pub name: TeamspaceName,
    /// Entra tenant (directory) id.
    pub tenant_id: TenantId,
    /// The MCP API app's client id.
    pub audience: uuid::Uuid,
    /// Scope a token must carry.
    pub required_scope: String,
    /// Removal guard threshold.
    pub max_removals: MaxRemovals,
    /// The Entra authority whose v2.0 tokens the token check accepts
    /// (`{authority_url}/{tenant_id}/v2.0` is the issuer).
    pub authority_url: url::Url,
    /// Named in 401 answers as `resource_metadata` (RFC 9728), when set.
    pub resource_metadata_url: Option<url::Url>,
    /// Configured sources, names unique within the teamspace.
    pub sources: Vec<SourceConfig>,
}

/// One `[[teamspaces.sources]]` table.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// `kind:id`.
    pub name: SourceName,
    /// When the daemon runs it (graph and csv only).
    pub schedule: Option<Schedule>,
    /// Kind-specific settings.
    pub settings: SourceSettings,
}

/// A compiled cron schedule with the text it came from.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// As written in the file.
    pub expression: String,
    /// Compiled (6- or 7-field form).
    pub compiled: cron::Schedule,
    /// The zone the expression is read in (`timezone = "Europe/Berlin"`; UTC by default).
    pub timezone: chrono_tz::Tz,
}

impl Schedule {
    /// The first time this schedule fires strictly after `now`.
    pub fn next_after(&self, now: chrono::DateTime<chrono::Utc>) -> Option<chrono::DateTime<chrono::Utc>> {
        let local = now.with_timezone(&self.timezone);
        self.compiled.after(&local).next().map(|t| t.with_timezone(&chrono::Utc))
    }

    /// The last time this schedule fired at or before `now`, if it ever did.
    pub fn last_at_or_before(&self, now: chrono::DateTime<chrono::Utc>) -> Option<chrono::DateTime<chrono::Utc>> {
        let local = now.with_timezone(&self.timezone);
        // The iterator from a time runs backwards from just before it.
        let just_after = local + chrono::Duration::milliseconds(1);
        self.compiled.after(&just_after).next_back().map(|t| t.with_timezone(&chrono::Utc))
    }
}

/// Kind-specific settings of a source.
#[derive(Debug, Clone)]
pub enum SourceSettings {
    /// Entra groups through Microsoft Graph.
    Graph(Box<GraphSettings>),
    /// A CSV file.
    Csv(CsvSettings),
    /// Entra's SCIM pushes.
    Scim(ScimSettings),
}

/// `kind = "graph"`.
#[derive(Debug, Clone)]
pub struct GraphSettings {
    /// Group object ids; members are their transitive union.
    pub groups: Vec<uuid::Uuid>,
    /// The app registration's client id.
    pub client_id: uuid::Uuid,
    /// Name of the environment variable holding the client secret.
    pub client_secret_env: String,
    /// Keep `accountEnabled = false` users.
    pub include_disabled: bool,
    /// Keep `userType = Guest` users.
    pub include_guests: bool,
    /// Microsoft Graph base URL.
    pub graph_url: url::Url,
    /// Entra authority base URL.
    pub authority_url: url::Url,
    /// How runs read Graph.
    pub mode: GraphMode,
    /// In delta mode, how often a full listing reconciles whatever delta rounds missed.
    pub full_every: std::time::Duration,
}

/// How a graph source reads Graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GraphMode {
    /// Every run lists every group's transitive members.
    Full,
    /// Runs follow Graph's delta links and apply only what changed; a full listing sets the
    /// state up, and repeats every `full_every`.
    Delta,
}

/// The periodic full reconcile of a delta-mode source, unless `full_every` says otherwise.
pub const DEFAULT_FULL_EVERY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// `kind = "csv"`.
#[derive(Debug, Clone)]
pub struct CsvSettings {
    /// The file, relative to the config file's folder unless absolute.
    pub path: PathBuf,
    /// `merge` or `replace`.
    pub mode: CsvMode,
}

/// How a CSV file relates to the source's claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CsvMode {
    /// Add and update; never remove.
    Merge,
    /// The file is the complete list; claims not in it are dropped (guards apply).
    Replace,
}

/// `kind = "scim"`.
#[derive(Debug, Clone)]
pub struct ScimSettings {
    /// The SCIM attribute carrying the Entra object id.
    pub oid_attribute: String,
    /// When non-empty, only members of these SCIM groups are claimed.
    pub groups: Vec<String>,
}

/// `[delivery]`.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Where events are POSTed.
    pub webhook_url: url::Url,
    /// Name of the environment variable holding the HMAC key.
    pub signing_secret_env: String,
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where `serve` listens.
    pub listen: SocketAddr,
    /// Connections served at once; further ones wait in the kernel's accept queue.
    pub max_connections: usize,
    /// The URL clients reach c7sync at (scheme, host, optional path prefix), for SCIM
    /// `meta.location`. Without it the request's `Host` is used.
    pub public_url: Option<url::Url>,
}

/// The default `[server] max_connections`: under the 1,024 descriptors a process often gets,
/// with room left for the database, logs and outbound calls.
pub const DEFAULT_MAX_CONNECTIONS: usize = 900;

/// Where to look for the file, in order: `--config`, `$C7SYNC_CONFIG`, `./c7sync.toml`.
pub fn locate(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os("C7SYNC_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("c7sync.toml"))
}

/// Reads and validates the file; `database_flag` (from `--database`) beats
/// `$C7SYNC_DATABASE_URL`, which beats the file.
pub fn load(path: &Path, database_flag: Option<&str>) -> Result<Config, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ConfigError::Missing(path.to_path_buf())),
        Err(source) => return Err(ConfigError::Read { path: path.to_path_buf(), source }),
    };
    let mut config = parse(path, &text)?;
    if let Some(url) = database_flag.map(str::to_owned).or_else(|| std::env::var("C7SYNC_DATABASE_URL").ok()) {
        config.database = url;
    }
    Ok(config)
}

/// Parses and validates config text; `path` is used for messages and relative CSV paths.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let raw: raw::RawConfig = toml::from_str(text)
        .map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string().trim_end().to_owned() })?;
    validate::validate(path, raw)
}

impl TeamspaceConfig {
    /// What the store keeps of this teamspace.
    pub fn spec(&self) -> crate::store::TeamspaceSpec {
        crate::store::TeamspaceSpec {
            name: self.name.clone(),
            tenant_id: self.tenant_id,
            audience: self.audience.to_string(),
            required_scope: self.required_scope.clone(),
            max_removals: self.max_removals,
        }
    }
}

impl Config {
    /// The teamspace called `name`, or an error listing the configured ones.
    pub fn teamspace(&self, name: &str) -> Result<&TeamspaceConfig, ConfigError> {
        self.teamspaces.iter().find(|t| t.name.as_str() == name).ok_or_else(|| {
            let known: Vec<_> = self.teamspaces.iter().map(|t| t.name.as_str()).collect();
            ConfigError::Invalid {
                path: self.path.clone(),
                key: "teamspaces".into(),
                message: format!(
                    "no teamspace `{name}` is configured (configured: {})",
                    if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                ),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::Schedule;

    #[test]
    fn a_schedule_knows_its_last_and_next_times() {
        let schedule = Schedule {
            expression: "0 */15 * * * *".into(),
            compiled: "0 */15 * * * *".parse().unwrap(),
            timezone: chrono_tz::UTC,
        };
        let at = |h, m, s| chrono::Utc.with_ymd_and_hms(2026, 12, 2, h, m, s).unwrap();
        assert_eq!(schedule.last_at_or_before(at(10, 7, 30)), Some(at(10, 0, 0)));
        assert_eq!(schedule.last_at_or_before(at(10, 15, 0)), Some(at(10, 15, 0)), "a tick at the instant counts");
        assert_eq!(schedule.next_after(at(10, 15, 0)), Some(at(10, 30, 0)));
    }
}
