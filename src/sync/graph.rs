//! A configured `graph` source → one reconcile run: list the groups, then apply the listing
//! as this source's snapshot. A listing that is not complete is a `failed` run that changes
//! nothing.

use serde::Serialize;

use crate::config::GraphSettings;
use crate::domain::TenantId;
use crate::plan::{Delta, Desired};
use crate::reconcile::{ReconcileError, Reconciler, RunReport, RunRequest};
use crate::source::graph::{GraphReader, ListingSummary, RetryPolicy};
use crate::store::RunInput;

/// What a Graph run did, beyond the run report.
#[derive(Debug, Serialize)]
pub struct GraphOutcome {
    /// The run.
    #[serde(flatten)]
    pub report: RunReport,
    /// What the listing held; absent when it failed.
    pub listing: Option<ListingSummary>,
}

/// Lists the source's groups and applies the result. `reader` carries the Graph client and
/// its token between runs of the same source; it is created here on first use, reading the
/// client secret from the environment then.
pub async fn run_configured(
    reconciler: &Reconciler,
    mut request: RunRequest,
    settings: &GraphSettings,
    tenant: TenantId,
    reader: &mut Option<GraphReader>,
) -> Result<GraphOutcome, ReconcileError> {
    let mut details = serde_json::json!({ "groups": settings.groups });
    let listed = match reader {
        Some(reader) => reader.list().await,
        None => match GraphReader::from_env(settings, tenant, RetryPolicy::default()) {
            Ok(created) => reader.insert(created).list().await,
            Err(e) => Err(e),
        },
    };
    let listing = match listed {
        Ok(listing) => listing,
        Err(error) => {
            request.details = Some(details);
            let reason = format!("the Graph listing is incomplete, so nothing was changed: {error}");
            let report = reconciler.record_failure(&request, RunInput::Snapshot, &reason).await?;
            return Ok(GraphOutcome { report, listing: None });
        }
    };
    details["listing"] = serde_json::json!(listing.summary);
    let desired = if listing.summary.unusable > 0 {
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
    };
    request.details = Some(details);
    let report = reconciler.run(&request, desired).await?;
    Ok(GraphOutcome { report, listing: Some(listing.summary) })
}
