//! A configured `graph` source → one reconcile run: list the groups, then apply the listing
//! as this source's snapshot. A listing that is not complete is a `failed` run that changes
//! nothing.

use serde::Serialize;

use crate::config::{GraphMode, GraphSettings};
use crate::domain::TenantId;
use crate::plan::{Delta, Desired};
use crate::reconcile::{ReconcileError, Reconciler, RunReport, RunRequest};
use crate::source::graph::delta::TickReport;
use crate::source::graph::{GraphError, GraphReader, Listing, ListingSummary, RetryPolicy};
use crate::store::RunInput;

/// What a Graph run did, beyond the run report.
#[derive(Debug, Serialize)]
pub struct GraphOutcome {
    /// The run.
    #[serde(flatten)]
    pub report: RunReport,
    /// What the listing held; absent when it failed.
    pub listing: Option<ListingSummary>,
    /// In delta mode, what the tick read and changed; absent in full mode or when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<TickReport>,
}

/// What a graph source keeps between its runs: the Graph client with its cached token, and
/// in delta mode the membership graph as last saved.
#[derive(Debug, Default)]
pub struct GraphState {
    reader: Option<GraphReader>,
    delta: Option<super::graph_delta::CachedDelta>,
}

impl GraphState {
    /// A state whose runs read Graph with `reader` (instead of one made from the settings).
    pub fn with_reader(reader: GraphReader) -> Self {
        GraphState { reader: Some(reader), delta: None }
    }
}

/// Reads the source's groups (a full listing, or in delta mode the changes since the last
/// run) and applies the result. The client secret is read from the environment on first use.
pub async fn run_configured(
    reconciler: &Reconciler,
    request: RunRequest,
    settings: &GraphSettings,
    tenant: TenantId,
    state: &mut GraphState,
) -> Result<GraphOutcome, ReconcileError> {
    let reader = match state.reader.take() {
        Some(reader) => reader,
        None => match GraphReader::from_env(settings, tenant, RetryPolicy::default()) {
            Ok(created) => created,
            Err(error) => {
                let details = serde_json::json!({ "groups": settings.groups });
                return record_incomplete(reconciler, request, details, &error).await;
            }
        },
    };
    let outcome = match settings.mode {
        GraphMode::Full => list_and_apply(reconciler, request, settings, &reader).await,
        GraphMode::Delta => super::graph_delta::run(reconciler, request, settings, &reader, &mut state.delta).await,
    };
    state.reader = Some(reader);
    outcome
}

async fn list_and_apply(
    reconciler: &Reconciler,
    mut request: RunRequest,
    settings: &GraphSettings,
    reader: &GraphReader,
) -> Result<GraphOutcome, ReconcileError> {
    let mut details = serde_json::json!({ "groups": settings.groups });
    let listing = match reader.list().await {
        Ok(listing) => listing,
        Err(error) => return record_incomplete(reconciler, request, details, &error).await,
    };
    details["listing"] = serde_json::json!(listing.summary);
    let summary = listing.summary.clone();
    let desired = desired_of(listing, &request, &mut details);
    request.details = Some(details);
    let report = reconciler.run(&request, desired).await?;
    Ok(GraphOutcome { report, listing: Some(summary), delta: None })
}

/// Records a run that could not read Graph completely: `failed`, nothing changed.
pub(super) async fn record_incomplete(
    reconciler: &Reconciler,
    mut request: RunRequest,
    details: serde_json::Value,
    error: &GraphError,
) -> Result<GraphOutcome, ReconcileError> {
    request.details = Some(details);
    let reason = format!("the Graph listing is incomplete, so nothing was changed: {error}");
    let report = reconciler.record_failure(&request, RunInput::Snapshot, &reason).await?;
    Ok(GraphOutcome { report, listing: None, delta: None })
}

/// The listing as the core's input: a snapshot, or only additions and updates when some
/// members could not be read.
pub(super) fn desired_of(listing: Listing, request: &RunRequest, details: &mut serde_json::Value) -> Desired {
    if listing.summary.unusable > 0 {
        // Members Graph has but c7sync cannot read: the snapshot would remove them if they are
        // members now, so this run only adds and updates (DESIGN §2.2).
        tracing::warn!(
            teamspace = %request.teamspace,
            source = %request.source,
            unusable = listing.summary.unusable,
            sample = ?listing.summary.unusable_sample.first(),
            "some group members have no GUID id or no usable address; this run removes nobody"
        );
        details["removals_withheld"] = serde_json::json!(true);
        Desired::Deltas(listing.claims.into_iter().map(Delta::Upsert).collect())
    } else {
        Desired::Snapshot(listing.claims)
    }
}
