//! The whole token check Context7 relies on: stage 1 (an Entra v2 access token's signature,
//! issuer, audience, lifetime and scope against the teamspace's tenant configuration), then
//! stage 2 (its `oid` is provisioned in the teamspace). Served by `/v1/…/authorize` and
//! `/v1/introspect`, explained check by check by `c7sync token check`.
//!
//! token → `jws` (decode) → `rules` (claims) → `keys` (signature) → `rules` (oid, scope) →
//! member look-up; `decisions` remembers stage 1 per token hash.

pub mod authority;
mod check;
pub mod decisions;
pub mod jws;
pub mod keys;
pub mod reason;
pub mod rules;
pub mod signature;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub use authority::{Authority, AuthorityError, Discovery};
pub use check::Explanation;
pub use decisions::Verified;
pub use keys::{KeyCache, KeySettings};
pub use reason::{Answer, Reason};
pub use rules::{Check, Expectation};

use crate::clock::Clock;
use crate::config::TeamspaceConfig;
use crate::lookup::{Found, MemberLookup};
use crate::metrics::Metrics;

/// One teamspace as the token check sees it.
pub struct TeamspaceTokens {
    /// Stored row id (for member look-ups).
    pub id: i64,
    /// The slug.
    pub name: String,
    /// What its tokens must say.
    pub expected: Expectation,
    /// Where its keys come from.
    pub authority: Authority,
    /// Added to 401 answers as `resource_metadata` (the MCP discovery hint).
    pub resource_metadata_url: Option<String>,
    decisions: decisions::Decisions,
    counters: crate::metrics::TokenCounters,
}

impl TeamspaceTokens {
    /// The token-check view of a configured teamspace stored as row `id`, counted in `metrics`.
    pub fn new(id: i64, config: &TeamspaceConfig, metrics: &Metrics) -> TeamspaceTokens {
        let authority = Authority::new(&config.authority_url, config.tenant_id);
        TeamspaceTokens {
            id,
            name: config.name.to_string(),
            expected: Expectation {
                tenant_id: config.tenant_id,
                audience: config.audience,
                required_scope: config.required_scope.clone(),
                issuer: authority.issuer(),
            },
            authority,
            resource_metadata_url: config.resource_metadata_url.as_ref().map(|u| u.to_string()),
            decisions: decisions::Decisions::default(),
            counters: metrics.token_counters(config.name.as_str()),
        }
    }
}

/// The outcome of a check.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Both stages passed.
    Accepted(Accepted),
    /// A check failed.
    Refused {
        /// Which.
        reason: Reason,
        /// What was found.
        detail: String,
    },
    /// Could not decide (keys never fetched and the authority unreachable, database down).
    Undecided {
        /// Why.
        why: String,
        /// When to ask again.
        retry_after: Duration,
    },
}

/// An accepted token: who it is, as the token and the member list say.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// Stage 1's findings.
    pub token: Arc<Verified>,
    /// The provisioned member.
    pub member: Arc<Found>,
}

/// The body of an accepted `authorize` answer.
#[derive(Debug, Serialize)]
pub struct AcceptedBody<'a> {
    /// The teamspace slug.
    pub teamspace: &'a str,
    /// `tid`.
    pub tenant_id: &'a str,
    /// `oid`.
    pub oid: &'a str,
    /// The member's email.
    pub email: &'a str,
    /// The member's display name.
    pub display_name: Option<&'a str>,
    /// `scp`, split.
    pub scopes: &'a [String],
    /// `exp` as RFC 3339.
    pub expires_at: &'a str,
}

impl Accepted {
    /// The JSON body `authorize` answers with.
    pub fn body<'a>(&'a self, teamspace: &'a str) -> AcceptedBody<'a> {
        AcceptedBody {
            teamspace,
            tenant_id: &self.token.text.tenant_id,
            oid: &self.token.text.oid,
            email: &self.member.record.email,
            display_name: self.member.record.display_name.as_deref(),
            scopes: &self.token.scopes,
            expires_at: &self.token.text.expires_at,
        }
    }
}

/// The token check over every configured teamspace.
pub struct TokenService {
    teamspaces: HashMap<String, Arc<TeamspaceTokens>>,
    keys: Arc<KeyCache>,
    members: MemberLookup,
    clock: Clock,
}

impl TokenService {
    /// The check for `teamspaces`, with keys from `keys` and members from `members`.
    pub fn new(
        teamspaces: Vec<TeamspaceTokens>,
        keys: Arc<KeyCache>,
        members: MemberLookup,
        clock: Clock,
    ) -> TokenService {
        let teamspaces = teamspaces.into_iter().map(|t| (t.name.clone(), Arc::new(t))).collect();
        TokenService { teamspaces, keys, members, clock }
    }

    /// The check for every teamspace of `config` (stored as `ids`: slug → row id), with a
    /// key cache of its own.
    pub fn for_config(
        config: &crate::config::Config,
        ids: &HashMap<String, i64>,
        members: MemberLookup,
        settings: KeySettings,
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> Result<TokenService, reqwest::Error> {
        let teamspaces: Vec<TeamspaceTokens> = config
            .teamspaces
            .iter()
            .filter_map(|t| ids.get(t.name.as_str()).map(|id| TeamspaceTokens::new(*id, t, &metrics)))
            .collect();
        // Plain http is configured only for loopback authorities; refuse it otherwise (redirects).
        let https_only = config.teamspaces.iter().all(|t| t.authority_url.scheme() == "https");
        let http = crate::outbound::client(authority::FETCH_TIMEOUT, https_only)?;
        let authorities: Vec<Authority> = teamspaces.iter().map(|t| t.authority.clone()).collect();
        let keys = Arc::new(KeyCache::new(http, authorities, settings, clock.clone(), metrics));
        Ok(TokenService::new(teamspaces, keys, members, clock))
    }

    /// The teamspace called `name`.
    pub fn teamspace(&self, name: &str) -> Option<&Arc<TeamspaceTokens>> {
        self.teamspaces.get(name)
    }

    /// The key cache (the daemon keeps it fresh).
    pub fn keys(&self) -> &Arc<KeyCache> {
        &self.keys
    }

    /// The teamspaces whose tenant and audience the (unverified) token names, by name: where
    /// `introspect` without a `teamspace` looks.
    pub fn teamspaces_for(&self, token: &str) -> Vec<&Arc<TeamspaceTokens>> {
        let Ok(jws) = jws::decode(token) else { return Vec::new() };
        let tenant = jws.claims.string("tid").ok().flatten().and_then(|t| t.parse::<crate::domain::TenantId>().ok());
        let audiences: Vec<uuid::Uuid> =
            jws.claims.audiences().unwrap_or_default().iter().filter_map(|a| uuid::Uuid::try_parse(a).ok()).collect();
        let mut found: Vec<_> = self
            .teamspaces
            .values()
            .filter(|t| Some(t.expected.tenant_id) == tenant && audiences.contains(&t.expected.audience))
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found
    }
}
