//! Raw config → validated config. Each check names the key path that failed.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::raw::{CountOrText, RawConfig, RawServer, RawSource, RawTeamspace};
use super::*;
use crate::domain::{MaxRemovals, SourceKind, SourceName, TeamspaceName};

/// Collects the file path so every check can build a [`ConfigError::Invalid`].
struct Checker<'a> {
    path: &'a Path,
}

impl Checker<'_> {
    fn invalid(&self, key: impl Into<String>, message: impl ToString) -> ConfigError {
        ConfigError::Invalid { path: self.path.to_path_buf(), key: key.into(), message: message.to_string() }
    }

    fn parse<T: FromStr>(&self, key: &str, text: &str) -> Result<T, ConfigError>
    where
        T::Err: ToString,
    {
        text.parse().map_err(|e: T::Err| self.invalid(key, e))
    }

    fn guid(&self, key: &str, text: &str) -> Result<uuid::Uuid, ConfigError> {
        crate::domain::parse_guid(text).map_err(|e| self.invalid(key, e))
    }

    fn env_name(&self, key: &str, name: &str) -> Result<String, ConfigError> {
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if valid {
            Ok(name.to_owned())
        } else {
            Err(self.invalid(key, format!("`{name}` is not an environment variable name; the file names the variable, the secret stays in the environment")))
        }
    }

    fn url(&self, key: &str, text: &str) -> Result<url::Url, ConfigError> {
        let url = url::Url::parse(text).map_err(|e| self.invalid(key, format!("`{text}`: {e}")))?;
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        match url.scheme() {
            "https" => Ok(url),
            "http" if loopback => Ok(url),
            "http" => {
                Err(self.invalid(key, format!("`{text}`: plain http is only allowed to a loopback host; use https")))
            }
            other => Err(self.invalid(key, format!("`{text}`: unsupported scheme `{other}`"))),
        }
    }

    fn schedule(&self, key: &str, text: &str, timezone: chrono_tz::Tz) -> Result<Schedule, ConfigError> {
        let fields = text.split_whitespace().count();
        // The cron crate wants seconds first; classic 5-field crontab lines run at second 0.
        let expanded = match fields {
            5 => format!("0 {text}"),
            6 | 7 => text.to_owned(),
            _ => {
                return Err(self.invalid(
                    key,
                    format!("`{text}` has {fields} fields; use 5-field cron (`*/15 * * * *`) or 6 with seconds"),
                ))
            }
        };
        let compiled = cron::Schedule::from_str(&expanded)
            .map_err(|e| self.invalid(key, format!("`{text}` is not a valid cron expression: {e}")))?;
        Ok(Schedule { expression: text.to_owned(), compiled, timezone })
    }
}

fn server(check: &Checker<'_>, raw: Option<RawServer>) -> Result<ServerConfig, ConfigError> {
    let raw = raw.unwrap_or(RawServer { listen: None, max_connections: None, public_url: None });
    let listen_text = raw.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        check.invalid("server.listen", format!("`{listen_text}` is not an address like 127.0.0.1:8787"))
    })?;
    let max_connections = raw.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
    if max_connections == 0 {
        return Err(check.invalid("server.max_connections", "must be at least 1"));
    }
    let public_url = match raw.public_url {
        None => None,
        Some(text) => {
            let url = check.url("server.public_url", &text)?;
            if url.query().is_some() || url.fragment().is_some() {
                return Err(check.invalid("server.public_url", format!("`{text}`: no query or fragment")));
            }
            Some(url)
        }
    };
    Ok(ServerConfig { listen, max_connections, public_url })
}

pub(super) fn validate(path: &Path, raw: RawConfig) -> Result<Config, ConfigError> {
    let check = Checker { path };
    let server = server(&check, raw.server)?;

    let mut names = HashSet::new();
    let mut teamspaces = Vec::with_capacity(raw.teamspaces.len());
    for (index, raw_teamspace) in raw.teamspaces.into_iter().enumerate() {
        let teamspace = teamspace(&check, index, raw_teamspace)?;
        if !names.insert(teamspace.name.clone()) {
            return Err(check.invalid(
                format!("teamspaces[{index}].name"),
                format!("teamspace `{}` is defined twice", teamspace.name),
            ));
        }
        teamspaces.push(teamspace);
    }

    let delivery = match raw.delivery {
        Some(d) => Some(DeliveryConfig {
            webhook_url: check.url("delivery.webhook_url", &d.webhook_url)?,
            signing_secret_env: check.env_name("delivery.signing_secret_env", &d.signing_secret_env)?,
        }),
        None => None,
    };

    let database = raw.database.unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
    Ok(Config { path: path.to_path_buf(), database: beside_config(path, &database), server, teamspaces, delivery })
}

/// A SQLite URL with a relative file path, made relative to the config file's folder: one rule
/// for every relative path in the file (CSV paths follow it too), whatever the working
/// directory. Other URLs (PostgreSQL, `sqlite::memory:`, absolute paths) are left as they are.
fn beside_config(config: &Path, url: &str) -> String {
    let Some(rest) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) else {
        return url.to_owned();
    };
    let (file, query) = rest.split_once('?').map_or((rest, None), |(f, q)| (f, Some(q)));
    let folder = config.parent().filter(|p| !p.as_os_str().is_empty());
    match folder {
        Some(folder) if !file.is_empty() && !file.starts_with(':') && Path::new(file).is_relative() => {
            let joined = folder.join(file);
            match query {
                Some(query) => format!("sqlite://{}?{query}", joined.display()),
                None => format!("sqlite://{}", joined.display()),
            }
        }
        _ => url.to_owned(),
    }
}

fn teamspace(check: &Checker<'_>, index: usize, raw: RawTeamspace) -> Result<TeamspaceConfig, ConfigError> {
    let key = |field: &str| format!("teamspaces[{index}].{field}");
    let name: TeamspaceName = check.parse(&key("name"), &raw.name)?;
    let max_removals = match raw.max_removals {
        None => MaxRemovals::default(),
        Some(CountOrText::Count(n)) => u64::try_from(n)
            .map(MaxRemovals::Count)
            .map_err(|_| check.invalid(key("max_removals"), format!("`{n}` is negative")))?,
        Some(CountOrText::Text(text)) => check.parse(&key("max_removals"), &text)?,
    };
    let mut source_names = HashSet::new();
    let mut sources = Vec::with_capacity(raw.sources.len());
    for (source_index, raw_source) in raw.sources.into_iter().enumerate() {
        let prefix = key(&format!("sources[{source_index}]"));
        let source = source(check, &prefix, raw_source)?;
        if !source_names.insert(source.name.clone()) {
            return Err(check.invalid(
                format!("{prefix}.id"),
                format!("source `{}` is defined twice in teamspace `{name}`", source.name),
            ));
        }
        sources.push(source);
    }
    Ok(TeamspaceConfig {
        tenant_id: check.parse(&key("tenant_id"), &raw.tenant_id)?,
        audience: check.guid(&key("audience"), &raw.audience)?,
        required_scope: raw.required_scope.unwrap_or_else(|| "mcp.access".to_owned()),
        authority_url: check.url(&key("authority_url"), raw.authority_url.as_deref().unwrap_or(DEFAULT_AUTHORITY))?,
        resource_metadata_url: raw
            .resource_metadata_url
            .map(|u| check.url(&key("resource_metadata_url"), &u))
            .transpose()?,
        name,
        max_removals,
        sources,
    })
}

fn source(check: &Checker<'_>, prefix: &str, raw: RawSource) -> Result<SourceConfig, ConfigError> {
    let key = |field: &str| format!("{prefix}.{field}");
    let named = |kind, id: &str| SourceName::new(kind, id).map_err(|e| check.invalid(key("id"), e));
    let schedule = |text: Option<String>, zone: Option<String>| -> Result<Option<Schedule>, ConfigError> {
        let timezone = match zone {
            None => chrono_tz::UTC,
            Some(_) if text.is_none() => return Err(check.invalid(key("timezone"), "a timezone needs a `schedule`")),
            Some(zone) => zone.parse::<chrono_tz::Tz>().map_err(|_| {
                check.invalid(
                    key("timezone"),
                    format!("`{zone}` is not an IANA time zone name (e.g. `Europe/Berlin`, `UTC`)"),
                )
            })?,
        };
        text.map(|t| check.schedule(&key("schedule"), &t, timezone)).transpose()
    };
    Ok(match raw {
        RawSource::Graph(g) => {
            if g.groups.is_empty() {
                return Err(check.invalid(key("groups"), "list at least one group object id"));
            }
            let groups = g
                .groups
                .iter()
                .enumerate()
                .map(|(i, group)| check.guid(&key(&format!("groups[{i}]")), group))
                .collect::<Result<_, _>>()?;
            let mode = match g.mode.as_deref() {
                None | Some("full") => GraphMode::Full,
                Some("delta") => GraphMode::Delta,
                Some(other) => return Err(check.invalid(key("mode"), format!("`{other}`: expected `full` or `delta`"))),
            };
            let full_every = match (&g.full_every, mode) {
                (None, _) => DEFAULT_FULL_EVERY,
                (Some(_), GraphMode::Full) => {
                    return Err(check.invalid(
                        key("full_every"),
                        "applies only with mode = \"delta\" (in full mode every run is a full listing)",
                    ))
                }
                (Some(text), GraphMode::Delta) => match humantime::parse_duration(text) {
                    Ok(every) if every >= std::time::Duration::from_secs(1) => every,
                    Ok(_) => return Err(check.invalid(key("full_every"), format!("`{text}`: at least 1s"))),
                    Err(e) => {
                        return Err(check.invalid(
                            key("full_every"),
                            format!("`{text}`: {e}; write a duration such as \"24h\", \"6h\" or \"90m\""),
                        ))
                    }
                },
            };
            SourceConfig {
                name: named(SourceKind::Graph, &g.id)?,
                schedule: schedule(g.schedule, g.timezone)?,
                settings: SourceSettings::Graph(Box::new(GraphSettings {
                    groups,
                    client_id: check.guid(&key("client_id"), &g.client_id)?,
                    client_secret_env: check.env_name(&key("client_secret_env"), &g.client_secret_env)?,
                    include_disabled: g.include_disabled,
                    include_guests: g.include_guests,
                    graph_url: check
                        .url(&key("graph_url"), g.graph_url.as_deref().unwrap_or("https://graph.microsoft.com"))?,
                    authority_url: check
                        .url(&key("authority_url"), g.authority_url.as_deref().unwrap_or(DEFAULT_AUTHORITY))?,
                    mode,
                    full_every,
                })),
            }
        }
        RawSource::Csv(c) => {
            let mode = match c.mode.as_deref() {
                None | Some("merge") => CsvMode::Merge,
                Some("replace") => CsvMode::Replace,
                Some(other) => {
                    return Err(check.invalid(key("mode"), format!("`{other}`: expected `merge` or `replace`")))
                }
            };
            let base = check.path.parent().unwrap_or(Path::new("."));
            SourceConfig {
                name: named(SourceKind::Csv, &c.id)?,
                schedule: schedule(c.schedule, c.timezone)?,
                settings: SourceSettings::Csv(CsvSettings { path: base.join(PathBuf::from(c.path)), mode }),
            }
        }
        RawSource::Scim(s) => SourceConfig {
            name: SourceName::new(SourceKind::Scim, "").map_err(|e| check.invalid(key("kind"), e))?,
            schedule: None,
            settings: SourceSettings::Scim(ScimSettings {
                oid_attribute: s.oid_attribute.unwrap_or_else(|| "externalId".to_owned()),
                groups: s.groups,
            }),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    const MINIMAL: &str = r#"
[[teamspaces]]
name = "acme"
tenant_id = "00000000-0000-0000-0000-000000000001"
audience = "00000000-0000-0000-0000-000000000002"
"#;

    fn error_of(text: &str) -> String {
        parse(Path::new("c7sync.toml"), text).unwrap_err().to_string()
    }

    #[test]
    fn the_starter_config_is_valid() {
        let config = parse(Path::new("c7sync.toml"), STARTER_CONFIG).unwrap();
        assert!(!config.teamspaces.is_empty());
    }

    #[test]
    fn the_complete_sample_config_is_valid() {
        let text = include_str!("../../samples/c7sync-complete.toml");
        let config = parse(Path::new("c7sync.toml"), text).unwrap();
        let kinds: Vec<_> = config.teamspaces[0].sources.iter().map(|s| s.name.kind().as_str()).collect();
        assert_eq!(kinds, ["graph", "csv", "scim"]);
        assert!(config.delivery.is_some());
    }

    #[test]
    fn defaults_apply() {
        let config = parse(Path::new("c7sync.toml"), MINIMAL).unwrap();
        assert_eq!(config.database, DEFAULT_DATABASE, "beside a config in the working directory");
        assert_eq!(config.teamspaces[0].max_removals, MaxRemovals::Percent(20.0));
        assert_eq!(config.teamspaces[0].required_scope, "mcp.access");
        assert_eq!(config.teamspaces[0].authority_url.as_str(), "https://login.microsoftonline.com/");
        assert_eq!(config.teamspaces[0].resource_metadata_url, None);
    }

    #[test]
    fn a_relative_database_follows_the_config_file() {
        let at = |config: &str, text: &str| parse(Path::new(config), text).unwrap().database;
        let with = |url: &str| format!("database = \"{url}\"\n{MINIMAL}");
        assert_eq!(at("/etc/c7sync/c7sync.toml", MINIMAL), "sqlite:///etc/c7sync/c7sync.db");
        assert_eq!(
            at("/etc/c7sync/c7sync.toml", &with("sqlite://state/c7.db?mode=rwc")),
            "sqlite:///etc/c7sync/state/c7.db?mode=rwc"
        );
        assert_eq!(at("/etc/c7sync/c7sync.toml", &with("sqlite:///var/lib/c7.db")), "sqlite:///var/lib/c7.db");
        assert_eq!(at("/etc/c7sync/c7sync.toml", &with("sqlite::memory:")), "sqlite::memory:");
        assert_eq!(at("/etc/c7sync/c7sync.toml", &with("postgres://c7@db/c7")), "postgres://c7@db/c7");
        assert_eq!(at("c7sync.toml", MINIMAL), DEFAULT_DATABASE, "a config in the working directory");
    }

    #[test]
    fn token_check_urls_are_checked() {
        let with = |line: &str| format!("{MINIMAL}{line}\n");
        let config = parse(Path::new("c7sync.toml"), &with("authority_url = \"http://127.0.0.1:9/\"")).unwrap();
        assert_eq!(config.teamspaces[0].authority_url.as_str(), "http://127.0.0.1:9/");
        let message = error_of(&with("authority_url = \"http://login.example.com\""));
        assert!(message.contains("teamspaces[0].authority_url") && message.contains("loopback"), "{message}");
        let message = error_of(&with("resource_metadata_url = \"not a url\""));
        assert!(message.contains("teamspaces[0].resource_metadata_url"), "{message}");
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let bad_guid = MINIMAL.replace("00000000-0000-0000-0000-000000000001", "not-a-guid");
        let message = error_of(&bad_guid);
        assert!(message.contains("c7sync.toml") && message.contains("teamspaces[0].tenant_id"), "{message}");

        let unknown = format!("{MINIMAL}colour = \"blue\"\n");
        assert!(error_of(&unknown).contains("colour"), "{}", error_of(&unknown));

        let twice = format!("{MINIMAL}{MINIMAL}");
        assert!(error_of(&twice).contains("defined twice"));
    }

    #[test]
    fn sources_are_checked() {
        let graph = format!(
            "{MINIMAL}[[teamspaces.sources]]\nkind = \"graph\"\nid = \"dev\"\ngroups = [\"00000000-0000-0000-0000-000000000003\"]\nclient_id = \"00000000-0000-0000-0000-000000000004\"\nclient_secret_env = \"SECRET\"\nschedule = \"*/15 * * * *\"\n"
        );
        let config = parse(Path::new("c7sync.toml"), &graph).unwrap();
        assert_eq!(config.teamspaces[0].sources[0].name.to_string(), "graph:dev");

        let bad_cron = graph.replace("*/15 * * * *", "every minute");
        assert!(error_of(&bad_cron).contains("sources[0].schedule"), "{}", error_of(&bad_cron));
        let http = graph.replace("schedule", "graph_url = \"http://graph.example.com\"\nschedule");
        assert!(error_of(&http).contains("loopback"), "{}", error_of(&http));
        let twice = format!("{graph}[[teamspaces.sources]]\nkind = \"csv\"\nid = \"dev\"\npath = \"a.csv\"\n[[teamspaces.sources]]\nkind = \"csv\"\nid = \"dev\"\npath = \"b.csv\"\n");
        assert!(error_of(&twice).contains("csv:dev"), "{}", error_of(&twice));
        let unknown_kind = format!("{MINIMAL}[[teamspaces.sources]]\nkind = \"ldap\"\n");
        assert!(error_of(&unknown_kind).contains("ldap"), "{}", error_of(&unknown_kind));
    }

    #[test]
    fn schedules_run_in_utc_unless_a_timezone_is_named() {
        let source = |extra: &str| {
            format!("{MINIMAL}[[teamspaces.sources]]\nkind = \"csv\"\nid = \"hr\"\npath = \"a.csv\"\n{extra}")
        };
        let at = |config: &Config| {
            let schedule = config.teamspaces[0].sources[0].schedule.clone().unwrap();
            let noon = chrono::DateTime::parse_from_rfc3339("2026-07-01T12:00:00Z").unwrap().to_utc();
            schedule.next_after(noon).unwrap().to_rfc3339()
        };
        let utc = parse(Path::new("c7sync.toml"), &source("schedule = \"0 18 * * *\"\n")).unwrap();
        assert_eq!(at(&utc), "2026-07-01T18:00:00+00:00");
        let berlin = source("schedule = \"0 18 * * *\"\ntimezone = \"Europe/Berlin\"\n");
        // 18:00 in Berlin in July is 16:00 UTC.
        assert_eq!(at(&parse(Path::new("c7sync.toml"), &berlin).unwrap()), "2026-07-01T16:00:00+00:00");
        let seconds = parse(Path::new("c7sync.toml"), &source("schedule = \"*/10 * * * * *\"\n")).unwrap();
        assert_eq!(at(&seconds), "2026-07-01T12:00:10+00:00");

        let bad_zone = source("schedule = \"0 18 * * *\"\ntimezone = \"Mars/Olympus\"\n");
        assert!(error_of(&bad_zone).contains("sources[0].timezone"), "{}", error_of(&bad_zone));
        let zone_alone = source("timezone = \"UTC\"\n");
        assert!(error_of(&zone_alone).contains("needs a `schedule`"), "{}", error_of(&zone_alone));
    }
}
