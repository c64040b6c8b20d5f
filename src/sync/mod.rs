//! Running configured sources: the one place where `sync`, `import` and the daemon turn a
//! source into a reconcile run.

pub mod csv;
pub mod graph;
mod graph_delta;

use crate::config::{SourceConfig, SourceSettings, TeamspaceConfig};
use crate::domain::Trigger;
use crate::reconcile::{ReconcileError, Reconciler, RunOptions, RunReport, RunRequest};

/// What a source keeps between its runs (a graph source: its client, token and delta state).
#[derive(Debug, Default)]
pub struct SourceState {
    graph: graph::GraphState,
}

/// One run of a configured source, as `sync` and the daemon report it.
#[derive(Debug)]
pub struct SourceRun {
    /// The run.
    pub report: RunReport,
    /// The run failed because the CSV file had invalid rows (exit 4).
    pub rejected_for_invalid_rows: bool,
    /// Source-specific facts for the JSON report: `summary` and `invalid` for csv, `listing`
    /// for graph.
    pub extra: serde_json::Value,
}

/// Runs `source` of `teamspace` once. `None` for a `scim` source: it is pushed, not pulled.
pub async fn run_source(
    reconciler: &Reconciler,
    teamspace: &TeamspaceConfig,
    source: &SourceConfig,
    trigger: Trigger,
    options: RunOptions,
    state: &mut SourceState,
) -> Result<Option<SourceRun>, ReconcileError> {
    if matches!(source.settings, SourceSettings::Scim(_)) {
        return Ok(None);
    }
    let request = RunRequest::new(teamspace.name.as_str(), source.name.clone(), trigger).with_options(options);
    let request = reconciler.start(request).await?;
    match &source.settings {
        SourceSettings::Csv(settings) => {
            let request = request.with_details(serde_json::json!({ "file": settings.path.display().to_string() }));
            let outcome = csv::run_configured(reconciler, request, settings, teamspace.tenant_id).await?;
            Ok(Some(SourceRun {
                extra: serde_json::json!({ "summary": outcome.summary, "invalid": outcome.invalid }),
                rejected_for_invalid_rows: outcome.rejected_for_invalid_rows,
                report: outcome.report,
            }))
        }
        SourceSettings::Graph(settings) => {
            let outcome =
                graph::run_configured(reconciler, request, settings, teamspace.tenant_id, &mut state.graph).await?;
            Ok(Some(SourceRun {
                extra: match &outcome.delta {
                    Some(delta) => serde_json::json!({ "listing": outcome.listing, "delta": delta }),
                    None => serde_json::json!({ "listing": outcome.listing }),
                },
                rejected_for_invalid_rows: false,
                report: outcome.report,
            }))
        }
        SourceSettings::Scim(_) => Ok(None),
    }
}
