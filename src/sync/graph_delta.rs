//! A delta-mode graph source → one reconcile run: follow the saved delta links (or list
//! everything when there is no usable state), work the snapshot out from the membership
//! graph, and save the new state in the transaction that applies the snapshot, so a delta
//! link is never saved without the changes it produced.

use crate::clock::Millis;
use crate::config::GraphSettings;
use crate::reconcile::{ReconcileError, Reconciler, RunRequest};
use crate::source::graph::delta::{Classified, DeltaState, TickReport};
use crate::source::graph::{GraphError, GraphReader, Listing};
use crate::store::{DeltaHead, DeltaWrite, Store};

use super::graph::{desired_of, record_incomplete, GraphOutcome};

/// The delta state as this process last saved or read it, so a tick need not decode the
/// stored graph again: used only while the stored revision is still this one.
#[derive(Debug)]
pub struct CachedDelta {
    revision: i64,
    state: DeltaState,
    classified: Classified,
    /// The snapshot worked out from `state`.
    listing: Listing,
}

/// One tick of a delta-mode source.
pub async fn run(
    reconciler: &Reconciler,
    mut request: RunRequest,
    settings: &GraphSettings,
    reader: &GraphReader,
    cache: &mut Option<CachedDelta>,
) -> Result<GraphOutcome, ReconcileError> {
    let started = Millis::now();
    let mut details = serde_json::json!({ "groups": settings.groups });
    let head = reconciler.store().graph_delta_head(&request.teamspace, &request.source).await?;
    // The classifications and the last snapshot are only good with the state they came from:
    // both are dropped below unless that state is still the saved one.
    let (cached, mut classified, cached_listing) = match cache.take() {
        Some(CachedDelta { revision, state, classified, listing }) => {
            (Some((revision, state)), classified, Some((revision, listing)))
        }
        None => (None, Classified::default(), None),
    };
    let head_revision = head.as_ref().map(|h| h.revision);
    let saved = match &head {
        None => Err("first run: setting up the delta state".to_owned()),
        Some(head) => saved_state(reconciler.store(), head, cached).await?,
    };
    if !matches!(&saved, Ok((true, _))) {
        // Classifications belong to the graph they were made from.
        classified = Classified::default();
    }
    let saved = saved.map(|(_, state)| state);
    let full_reason = match (&saved, &head) {
        (Err(reason), _) => Some(reason.clone()),
        (Ok(state), _) if state.links.roots != settings.groups => {
            Some("the configured groups changed since the delta state was set up".to_owned())
        }
        (Ok(_), Some(head)) if started.since(head.full_at) >= settings.full_every.as_millis() as u64 => {
            Some(format!("periodic full reconcile (full_every = {})", humantime::format_duration(settings.full_every)))
        }
        _ => None,
    };
    let state_read = Millis::now();
    let read = match (full_reason, saved) {
        (Some(reason), _) => reader.delta_full(reason).await,
        (None, Ok(state)) => match reader.delta_advance(state).await {
            Err(expired @ GraphError::Expired { .. }) => {
                tracing::info!(teamspace = %request.teamspace, source = %request.source, reason = %expired, "a delta link expired; listing everything again");
                reader.delta_full(format!("{expired}; listed everything again")).await
            }
            other => other,
        },
        (None, Err(_)) => unreachable!("a state that could not be read always has a reason for a full listing"),
    };
    let (mut state, tick) = match read {
        Ok(read) => read,
        Err(error) => return record_incomplete(reconciler, request, details, &error).await,
    };
    let graph_read = Millis::now();
    // A quiet tick changed nothing in the graph: the snapshot is the one worked out last time.
    let unchanged = !tick.edges_changed && !tick.users_changed;
    let previous = cached_listing.filter(|(revision, _)| Some(*revision) == head_revision).map(|(_, l)| l);
    let mut listing = match previous {
        Some(listing) if unchanged => listing,
        previous => {
            if let Some(previous) = previous {
                // The core then plans only what changed since, if that is what it applied.
                request = request.with_snapshot_base(std::sync::Arc::new(previous.claims));
            }
            state.graph.listing(reader.user_filter(), &mut classified)
        }
    };
    listing.summary.fetch_ms = Millis::now().since(started);
    listing.summary.pages = tick.pages;
    let phases = [state_read.since(started), graph_read.since(state_read), Millis::now().since(graph_read)];
    log_tick(&request, &tick, phases);
    details["delta"] = serde_json::json!(&tick);
    details["listing"] = serde_json::json!(listing.summary);
    let summary = listing.summary.clone();
    let kept = listing.clone();
    let desired = desired_of(listing, &request, &mut details);
    request.details = Some(details);
    if request.options.dry_run {
        // A dry run changes nothing, the delta state included: the next run reads the same
        // changes again.
        let report = reconciler.run(&request, desired).await?;
        return Ok(GraphOutcome { report, listing: Some(summary), delta: Some(tick) });
    }
    let unencodable = |e: String| ReconcileError::Refused(format!("cannot save the delta state: {e}"));
    let links = state.links_json().map_err(unencodable)?;
    let edges = tick.edges_changed.then(|| state.edges_bytes()).transpose().map_err(unencodable)?;
    let users = tick.users_changed.then(|| state.users_bytes()).transpose().map_err(unencodable)?;
    let full_at = match (&head, tick.full_reason.is_some()) {
        (Some(head), false) => head.full_at,
        _ => Millis::now(),
    };
    let write = DeltaWrite {
        based_on: head.as_ref().map(|h| h.revision),
        full_at,
        links: &links,
        edges: edges.as_deref(),
        users: users.as_deref(),
    };
    let mut locked = reconciler.lock(&request.teamspace).await?;
    let source = locked.session.ensure_source(&request.source, request.requested_at).await?;
    let revision = locked.session.save_graph_delta(source.id, &write, Millis::now()).await?;
    let report = reconciler.run_locked(locked, &request, desired, None).await?;
    *cache = Some(CachedDelta { revision, state, classified, listing: kept });
    Ok(GraphOutcome { report, listing: Some(summary), delta: Some(tick) })
}

/// The saved state at `head`: the cached copy when it is current (`true`), else decoded from
/// the store. `Err` is the reason a full listing must rebuild it.
async fn saved_state(
    store: &Store,
    head: &DeltaHead,
    cached: Option<(i64, DeltaState)>,
) -> Result<Result<(bool, DeltaState), String>, ReconcileError> {
    if let Some((_, state)) = cached.filter(|(revision, _)| *revision == head.revision) {
        return Ok(Ok((true, state)));
    }
    let Some(body) = store.graph_delta_body(head.source_id, head.revision).await? else {
        return Ok(Err("the saved delta state changed while it was read".to_owned()));
    };
    Ok(DeltaState::decode(&head.links, &body.edges, &body.users).map(|state| (false, state)).map_err(|e| {
        tracing::warn!(source_id = head.source_id, error = %e, "the saved delta state cannot be read; listing everything again");
        format!("the saved delta state cannot be read ({e})")
    }))
}

/// `phases`: milliseconds spent reading the saved state, reading Graph, working out the
/// snapshot.
fn log_tick(request: &RunRequest, tick: &TickReport, phases: [u64; 3]) {
    tracing::info!(
        teamspace = %request.teamspace,
        source = %request.source,
        kind = ?tick.kind,
        full_reason = tick.full_reason.as_deref().unwrap_or(""),
        requests = tick.requests,
        pages = tick.pages,
        member_changes = tick.member_changes,
        user_changes = tick.user_changes,
        groups_joined = tick.groups_joined,
        groups_left = tick.groups_left,
        state_ms = phases[0],
        graph_ms = phases[1],
        snapshot_ms = phases[2],
        "read Graph"
    );
}
