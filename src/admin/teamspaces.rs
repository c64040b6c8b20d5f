//! A teamspace as an admin sees it: its tenant configuration, members, sources with their last
//! runs, runs a guard holds back; and the "Test connection" check against its tenant.

use serde::Serialize;

use crate::config::{SourceSettings, TeamspaceConfig};
use crate::store::{RunRecord, SourceSummary, Store, StoreError};
use crate::token::{Authority, AuthorityError, Discovery};

/// How far back held runs are looked for.
const HELD_RUNS_SCANNED: i64 = 200;

/// One configured teamspace with what the store knows of it.
#[derive(Debug, Serialize)]
pub struct TeamspaceView {
    /// Slug.
    pub name: String,
    /// The tenant configuration tokens are checked against.
    pub tenant: TenantView,
    /// Members now.
    pub members: u64,
    /// Each source with its claims and last run.
    pub sources: Vec<SourceView>,
    /// Runs a guard held back that nobody has approved yet, newest first.
    pub held_runs: Vec<RunRecord>,
}

/// The token-check settings of a teamspace.
#[derive(Debug, Serialize)]
pub struct TenantView {
    /// Entra tenant id.
    pub tenant_id: String,
    /// The audience tokens must carry.
    pub audience: String,
    /// The scope tokens must carry.
    pub required_scope: String,
    /// The authority tokens come from.
    pub authority_url: String,
    /// The removal guard.
    pub max_removals: String,
}

/// A source of a teamspace: configured ones with their kind and schedule, and those only the
/// store knows (manual, one-off imports).
#[derive(Debug, Serialize)]
pub struct SourceView {
    /// `kind:id`.
    pub source: String,
    /// Its cron schedule, when it runs on one.
    pub schedule: Option<String>,
    /// Claims and last run.
    #[serde(flatten)]
    pub state: Option<SourceSummary>,
}

/// Every configured teamspace, in config order.
pub async fn list(store: &Store, teamspaces: &[TeamspaceConfig]) -> Result<Vec<TeamspaceView>, StoreError> {
    let mut summaries = store.teamspace_summaries().await?;
    let mut views = Vec::with_capacity(teamspaces.len());
    for config in teamspaces {
        let Some(at) = summaries.iter().position(|s| s.name == config.name.as_str()) else { continue };
        let summary = summaries.swap_remove(at);
        let mut sources: Vec<SourceView> = config
            .sources
            .iter()
            .map(|s| SourceView {
                source: s.name.to_string(),
                schedule: s.schedule.as_ref().map(|s| s.expression.clone()),
                state: None,
            })
            .collect();
        for state in summary.sources {
            match sources.iter_mut().find(|v| v.source == state.source) {
                Some(view) => view.state = Some(state),
                None => sources.push(SourceView { source: state.source.clone(), schedule: None, state: Some(state) }),
            }
        }
        let held_runs = store
            .list_runs(Some(summary.id), HELD_RUNS_SCANNED)
            .await?
            .into_iter()
            .filter(super::runs::is_held)
            .collect();
        views.push(TeamspaceView {
            name: summary.name,
            tenant: TenantView {
                tenant_id: config.tenant_id.to_string(),
                audience: config.audience.to_string(),
                required_scope: config.required_scope.clone(),
                authority_url: config.authority_url.to_string(),
                max_removals: config.max_removals.to_string(),
            },
            members: summary.members,
            sources,
            held_runs,
        });
    }
    Ok(views)
}

/// Whether the teamspace accepts SCIM pushes (it has a `kind = "scim"` source).
pub fn accepts_scim(teamspace: &TeamspaceConfig) -> bool {
    teamspace.sources.iter().any(|s| matches!(s.settings, SourceSettings::Scim(_)))
}

/// The "Test connection" check: the tenant's OpenID discovery document, its issuer, its keys.
pub async fn test_connection(teamspace: &TeamspaceConfig) -> (Authority, Result<Discovery, AuthorityError>) {
    let authority = Authority::new(&teamspace.authority_url, teamspace.tenant_id);
    let result = match crate::outbound::client(crate::token::authority::FETCH_TIMEOUT, false) {
        Ok(http) => authority.discover(&http).await,
        Err(e) => {
            Err(AuthorityError::Unreachable { url: authority.discovery_url(), message: crate::outbound::describe(&e) })
        }
    };
    (authority, result)
}
