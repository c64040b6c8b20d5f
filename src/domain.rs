//! The nouns of provisioning: teamspaces, Entra object ids, emails, sources, runs.
//! Pure value types, parsed once at the edge so the rest of the code can trust them.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// A GUID failed to parse; carries the offending text for error messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a GUID (expected 8-4-4-4-12 hex digits)")]
pub struct InvalidGuid(pub String);

/// Parses a GUID in the hyphenated form (optionally in braces), any case.
pub fn parse_guid(text: &str) -> Result<uuid::Uuid, InvalidGuid> {
    let trimmed = text.trim();
    let inner = trimmed.strip_prefix('{').and_then(|t| t.strip_suffix('}')).unwrap_or(trimmed);
    // Only the hyphenated 36-character form: Entra, Graph and the admin centre all print it,
    // and accepting the 32-digit "simple" form would let typos of other ids slip through.
    if inner.len() != 36 {
        return Err(InvalidGuid(text.to_owned()));
    }
    uuid::Uuid::try_parse(inner).map_err(|_| InvalidGuid(text.to_owned()))
}

/// An Entra object id (`oid` claim): a GUID, compared and printed lower-case canonical.
///
/// Held as its 16 bytes in GUID text order (big-endian): byte order is then numeric order, so
/// our sort order and SQLite's BLOB index order agree. Bytes rather than a `u128` keep the
/// alignment at 1, which keeps the million-entry planning structures free of padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Oid([u8; 16]);

impl Oid {
    /// The 16 bytes as stored.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    /// The 16 bytes as stored, where they are (a statement can read them in place).
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Inverse of [`Oid::to_bytes`]; `None` unless exactly 16 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Oid)
    }

    /// Builds an oid from its numeric value (tests and benchmarks generate oids this way).
    pub fn from_u128(value: u128) -> Self {
        Oid(value.to_be_bytes())
    }
}

impl FromStr for Oid {
    type Err = InvalidGuid;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_guid(text).map(|u| Oid(*u.as_bytes()))
    }
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        uuid::Uuid::from_bytes(self.0).hyphenated().fmt(f)
    }
}

impl Serialize for Oid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An Entra tenant id (directory id): a GUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TenantId(uuid::Uuid);

impl TenantId {
    /// The GUID.
    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl FromStr for TenantId {
    type Err = InvalidGuid;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_guid(text).map(TenantId)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl Serialize for TenantId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An email address as a source gave it. Equality ignores ASCII case, as Entra does.
#[derive(Debug, Clone, Eq, Serialize)]
#[serde(transparent)]
pub struct Email(Box<str>);

/// An email failed the "looks like an address" check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{}` is not an email address", crate::log::escape_controls(.0))]
pub struct InvalidEmail(pub String);

impl Email {
    /// The address as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq for Email {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl FromStr for Email {
    type Err = InvalidEmail;
    /// Deliberately shallow: one `@`, something on each side, a dot in the domain, no
    /// spaces. Entra has already validated mailboxes; we only catch shifted columns and typos.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        let bad = || InvalidEmail(text.to_owned());
        let (local, domain) = trimmed.split_once('@').ok_or_else(bad)?;
        let plausible = !local.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && trimmed.len() <= 254
            && !trimmed.chars().any(|c| c.is_whitespace() || c.is_control());
        if plausible {
            Ok(Email(trimmed.into()))
        } else {
            Err(bad())
        }
    }
}

/// A member's display name as a source gave it: trimmed, never empty, no control characters
/// (a newline, NUL or ESC in a name would reach tables, CSV exports and terminals).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DisplayName(Box<str>);

/// A display name failed its check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidDisplayName {
    /// Nothing but spaces.
    #[error("the display name is empty")]
    Empty,
    /// A control character, escaped in the message.
    #[error("the display name `{0}` contains a control character (newline, tab, NUL, ESC, …)")]
    Control(String),
}

impl DisplayName {
    /// The name. Names stored before control characters were refused are passed as read.
    pub(crate) fn from_stored(text: String) -> Self {
        DisplayName(text.into())
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `text` as an optional name: blank means "the source does not say".
    pub fn optional(text: Option<&str>) -> Result<Option<DisplayName>, InvalidDisplayName> {
        text.map(str::trim).filter(|t| !t.is_empty()).map(str::parse).transpose()
    }
}

impl std::ops::Deref for DisplayName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DisplayName {
    type Err = InvalidDisplayName;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(InvalidDisplayName::Empty);
        }
        if trimmed.chars().any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')) {
            return Err(InvalidDisplayName::Control(crate::log::escape_controls(trimmed).into_owned()));
        }
        Ok(DisplayName(trimmed.into()))
    }
}

/// Stable 64-bit fingerprints of member attributes, stored beside them (`members.email_hash`,
/// `members.name_hash`) so that planning a million-member teamspace compares 16 bytes per
/// member instead of loading its text. xxh3-64 with seed 0 is a fixed, published algorithm,
/// so stored values stay valid across releases; a collision (2^-64 per change) would hide
/// one attribute change until the next one.
pub mod fingerprint {
    use super::Email;

    /// Of the address with ASCII letters lower-cased, matching `Email`'s equality.
    pub fn email(email: &Email) -> i64 {
        let mut buffer = [0u8; 256];
        let bytes = email.as_str().as_bytes();
        let hash = match buffer.get_mut(..bytes.len()) {
            Some(lowered) => {
                // One pass, copying and lowering together (a million-member import hashes
                // each address three times).
                for (to, from) in lowered.iter_mut().zip(bytes) {
                    *to = from.to_ascii_lowercase();
                }
                xxhash_rust::xxh3::xxh3_64(lowered)
            }
            // Longer than an address can be (254); hash as given rather than allocate.
            None => xxhash_rust::xxh3::xxh3_64(bytes),
        };
        hash as i64
    }

    /// Of the display name exactly as given.
    pub fn name(name: &str) -> i64 {
        xxhash_rust::xxh3::xxh3_64(name.as_bytes()) as i64
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A teamspace slug (`acme`): lower-case letters, digits and `-`, 1 to 63 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TeamspaceName(String);

/// Why a name (teamspace slug or source id) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a valid name: use 1-63 lower-case letters, digits, `-` or `_`, starting with a letter or digit")]
pub struct InvalidName(pub String);

fn is_slug(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && text.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

impl FromStr for TeamspaceName {
    type Err = InvalidName;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if is_slug(text) {
            Ok(TeamspaceName(text.to_owned()))
        } else {
            Err(InvalidName(text.to_owned()))
        }
    }
}

impl TeamspaceName {
    /// The slug.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TeamspaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where membership comes from. The order of the variants is the attribute precedence:
/// when two sources claim one member and disagree on its email or name, the earlier kind
/// wins, so an admin's manual entry beats an Entra push, which beats a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// `c7sync members add/remove`: the dashboard's "Add user".
    Manual,
    /// Pushed by Entra's provisioning service.
    Scim,
    /// Entra groups read through Microsoft Graph.
    Graph,
    /// A CSV file.
    Csv,
}

impl SourceKind {
    /// The kind's name as it appears in `kind:id`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Manual => "manual",
            SourceKind::Scim => "scim",
            SourceKind::Graph => "graph",
            SourceKind::Csv => "csv",
        }
    }

    /// Whether this kind hands in full snapshots, the only runs the removal guards apply to.
    /// Manual and SCIM changes are explicit one-by-one instructions.
    pub fn is_snapshot_kind(self) -> bool {
        matches!(self, SourceKind::Graph | SourceKind::Csv)
    }
}

impl FromStr for SourceKind {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "manual" => Ok(SourceKind::Manual),
            "scim" => Ok(SourceKind::Scim),
            "graph" => Ok(SourceKind::Graph),
            "csv" => Ok(SourceKind::Csv),
            other => Err(format!("unknown source kind `{other}` (expected graph, csv, scim or manual)")),
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A source within its teamspace: `graph:developers`, `csv:hr-export`, `scim`, `manual`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceName {
    kind: SourceKind,
    id: String,
}

impl SourceName {
    /// A named source. `scim` and `manual` have an empty id: there is one of each per teamspace.
    pub fn new(kind: SourceKind, id: &str) -> Result<Self, InvalidName> {
        match kind {
            SourceKind::Manual | SourceKind::Scim => Ok(SourceName { kind, id: String::new() }),
            SourceKind::Graph | SourceKind::Csv if is_slug(id) => Ok(SourceName { kind, id: id.to_owned() }),
            SourceKind::Graph | SourceKind::Csv => Err(InvalidName(id.to_owned())),
        }
    }

    /// The manual source.
    pub fn manual() -> Self {
        SourceName { kind: SourceKind::Manual, id: String::new() }
    }

    /// The `scim` source: what Entra's provisioning service pushes.
    pub fn scim() -> Self {
        SourceName { kind: SourceKind::Scim, id: String::new() }
    }

    /// The kind part.
    pub fn kind(&self) -> SourceKind {
        self.kind
    }

    /// The id part (`developers` in `graph:developers`; empty for scim and manual).
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl FromStr for SourceName {
    type Err = String;
    /// Parses `kind:id` or a bare `scim` / `manual`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (kind, id) = text.split_once(':').unwrap_or((text, ""));
        let kind: SourceKind = kind.parse()?;
        SourceName::new(kind, id).map_err(|e| e.to_string())
    }
}

impl fmt::Display for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.id.is_empty() {
            f.write_str(self.kind.as_str())
        } else {
            write!(f, "{}:{}", self.kind, self.id)
        }
    }
}

impl Serialize for SourceName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A run's id: a positive integer, as printed by every command that starts a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RunId(pub i64);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::EnumString, strum::IntoStaticStr, strum::Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Trigger {
    /// `c7sync import`.
    Import,
    /// `c7sync sync`.
    Sync,
    /// A source's schedule in `c7sync serve`.
    Schedule,
    /// `c7sync members add` or `remove`.
    Manual,
    /// A SCIM request.
    Scim,
    /// `c7sync runs approve`.
    Approve,
}

impl Trigger {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// How many members one run may remove before the guard holds it back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxRemovals {
    /// An absolute number of members.
    Count(u64),
    /// A share of the teamspace's current members, in percent (0 to 100).
    Percent(f64),
}

impl Default for MaxRemovals {
    fn default() -> Self {
        MaxRemovals::Percent(20.0)
    }
}

impl MaxRemovals {
    /// The largest number of removals allowed for a teamspace of `current_members`.
    pub fn allowed(self, current_members: u64) -> u64 {
        match self {
            MaxRemovals::Count(n) => n,
            // Floor: "20% of 4 members" allows 0 removals, so tiny teamspaces err on the side
            // of asking a human. f64 is exact for any realistic member count.
            MaxRemovals::Percent(p) => ((current_members as f64) * p / 100.0).floor() as u64,
        }
    }
}

impl FromStr for MaxRemovals {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        if let Some(number) = trimmed.strip_suffix('%') {
            match number.trim().parse::<f64>() {
                Ok(p) if (0.0..=100.0).contains(&p) => Ok(MaxRemovals::Percent(p)),
                _ => Err(format!("`{text}` is not a percentage between 0% and 100%")),
            }
        } else {
            trimmed
                .parse::<u64>()
                .map(MaxRemovals::Count)
                .map_err(|_| format!("`{text}` is neither a count (`50`) nor a percentage (`20%`)"))
        }
    }
}

impl fmt::Display for MaxRemovals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaxRemovals::Count(n) => write!(f, "{n}"),
            MaxRemovals::Percent(p) => write!(f, "{p}%"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_is_canonical_lower_case_and_round_trips_through_bytes() {
        let oid: Oid = "{6F9619FF-8B86-D011-B42D-00CF4FC964FF}".parse().unwrap();
        assert_eq!(oid.to_string(), "6f9619ff-8b86-d011-b42d-00cf4fc964ff");
        assert_eq!(Oid::from_bytes(&oid.to_bytes()), Some(oid));
        assert!("6f9619ff8b86d011b42d00cf4fc964ff".parse::<Oid>().is_err());
        assert!("6f9619ff-8b86-d011-b42d-00cf4fc964fg".parse::<Oid>().is_err());
        assert!(Oid::from_bytes(&[1, 2, 3]).is_none());
    }

    #[test]
    fn oid_byte_order_matches_numeric_order() {
        let small = Oid::from_u128(1);
        let large = Oid::from_u128(1 << 120);
        assert!(small < large);
        assert!(small.to_bytes() < large.to_bytes());
    }

    #[test]
    fn email_compares_case_insensitively_and_rejects_non_addresses() {
        let a: Email = "Ada@Contoso.com".parse().unwrap();
        let b: Email = "ada@contoso.com".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "Ada@Contoso.com");
        for bad in ["", "ada", "@contoso.com", "ada@", "ada@contoso", "a b@c.com", "a@b@c.com", "a@.com"] {
            assert!(bad.parse::<Email>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn email_fingerprints_ignore_case_and_are_stable() {
        let a: Email = "Ada@Contoso.com".parse().unwrap();
        let b: Email = "ada@contoso.com".parse().unwrap();
        assert_eq!(fingerprint::email(&a), fingerprint::email(&b));
        assert_ne!(fingerprint::name("Ada"), fingerprint::name("ada"));
        // Stored in databases: the algorithm must never change silently.
        assert_eq!(fingerprint::email(&b), xxhash_rust::xxh3::xxh3_64(b"ada@contoso.com") as i64);
    }

    #[test]
    fn source_names_parse_and_print_as_kind_colon_id() {
        let graph: SourceName = "graph:developers".parse().unwrap();
        assert_eq!(graph.to_string(), "graph:developers");
        assert_eq!("scim".parse::<SourceName>().unwrap().to_string(), "scim");
        assert!("graph:".parse::<SourceName>().is_err());
        assert!("ldap:x".parse::<SourceName>().is_err());
        assert!(SourceKind::Manual < SourceKind::Csv, "manual outranks csv");
    }

    #[test]
    fn max_removals_parses_counts_and_percentages() {
        assert_eq!("50".parse::<MaxRemovals>(), Ok(MaxRemovals::Count(50)));
        assert_eq!("20%".parse::<MaxRemovals>(), Ok(MaxRemovals::Percent(20.0)));
        assert!("120%".parse::<MaxRemovals>().is_err());
        assert!("lots".parse::<MaxRemovals>().is_err());
        assert_eq!(MaxRemovals::Percent(20.0).allowed(10), 2);
        assert_eq!(MaxRemovals::Percent(20.0).allowed(4), 0);
        assert_eq!(MaxRemovals::Count(5).allowed(1), 5);
    }
}
