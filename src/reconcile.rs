//! The reconcile core, the one path by which members change: plan against the current state
//! (read page by page, joined with the input as it comes), guard, then apply (or record a dry
//! run / held plan), in one write transaction.

use serde::Serialize;

use crate::clock::Millis;
use crate::domain::{DisplayName, Oid, RunId, SourceKind, SourceName, Trigger};
use crate::plan::guard::{self, GuardInput};
use crate::plan::{
    merge_digest, snapshot_digest, ClaimChange, Counts, Delta, Desired, DesiredClaim, Joined, Plan, Planner, SourceKey,
};
use crate::store::{
    NewRun, Outcome, RunEnd, RunInput, Scope, SourceRecord, Store, StoreError, TeamspaceRecord, WriteSession,
};

/// Delta batches naming more members than this load the whole teamspace.
const WHOLE_TEAMSPACE_ABOVE: usize = 20_000;

/// What a run is asked to do besides its input.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Plan and record, change nothing.
    pub dry_run: bool,
    /// Bypass the removal guards.
    pub allow_mass_removal: bool,
}

/// Who asks for a run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// Teamspace slug.
    pub teamspace: String,
    /// `kind:id`.
    pub source: SourceName,
    /// What started it (`import`, `sync`, `schedule`, `manual`, `scim`).
    pub trigger: Trigger,
    /// Dry run, guard override.
    pub options: RunOptions,
    /// Source-specific facts to keep on the run.
    pub details: Option<serde_json::Value>,
    /// When the source started being read: the run's start, so its duration covers the read.
    pub requested_at: Millis,
    /// The `running` run recorded by [`Reconciler::start`], which this request completes.
    pub started: Option<RunId>,
    /// The snapshot this source last handed the core, when the caller still has it: see
    /// [`RunRequest::with_snapshot_base`].
    pub snapshot_base: Option<std::sync::Arc<Vec<DesiredClaim>>>,
}

impl RunRequest {
    /// A request starting now, with default options and no details.
    pub fn new(teamspace: impl Into<String>, source: SourceName, trigger: Trigger) -> Self {
        RunRequest {
            teamspace: teamspace.into(),
            source,
            trigger,
            options: RunOptions::default(),
            details: None,
            requested_at: Millis::now(),
            started: None,
            snapshot_base: None,
        }
    }

    /// With `base`, the snapshot this source handed the core last time. If that snapshot is
    /// the one the source last applied and nothing has been applied to the teamspace since,
    /// the teamspace is exactly as it left it: the new snapshot is then planned as its
    /// difference from `base`, which plans the same (the planner is idempotent) without
    /// loading every member. Otherwise `base` is ignored.
    pub fn with_snapshot_base(self, base: std::sync::Arc<Vec<DesiredClaim>>) -> Self {
        RunRequest { snapshot_base: Some(base), ..self }
    }

    /// With `options`.
    pub fn with_options(self, options: RunOptions) -> Self {
        RunRequest { options, ..self }
    }

    /// With `details` kept on the run.
    pub fn with_details(self, details: serde_json::Value) -> Self {
        RunRequest { details: Some(details), ..self }
    }

    /// The run row for this request against `source`; approvals and snapshot digests are set
    /// by the caller that has them.
    fn new_run(&self, teamspace_id: i64, source: &SourceRecord, input: RunInput) -> NewRun {
        NewRun {
            teamspace_id,
            source_id: source.id,
            trigger: self.trigger,
            input,
            started_at: self.requested_at,
            source_version: source.version,
            approves: None,
            details: self.details.clone(),
            snapshot_digest: None,
            started: self.started,
        }
    }

    /// The report of this request's run.
    fn report(&self, run_id: RunId, outcome: Outcome, reason: Option<String>, plan: Plan) -> RunReport {
        RunReport {
            run_id,
            teamspace: self.teamspace.clone(),
            source: self.source.clone(),
            outcome,
            counts: plan.counts(),
            reason,
            plan,
        }
    }
}

/// The result of a run, as every command reports it.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Run id.
    pub run_id: RunId,
    /// Teamspace slug.
    pub teamspace: String,
    /// `kind:id`.
    pub source: SourceName,
    /// How it ended.
    pub outcome: Outcome,
    /// Member-level counts.
    #[serde(flatten)]
    pub counts: Counts,
    /// Why it was aborted or failed.
    pub reason: Option<String>,
    /// The plan (for printing the first rows).
    #[serde(skip)]
    pub plan: Plan,
}

/// What stops a run from being recorded at all.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request cannot be carried out; the message says why.
    #[error("{0}")]
    Refused(String),
    /// Another process is running this source now.
    #[error("{source_name} is already running (run {run}, in another c7sync process); try again when it has finished")]
    AlreadyRunning {
        /// The source.
        source_name: SourceName,
        /// Its run in progress.
        run: RunId,
    },
}

/// A teamspace locked for writing: an open write session, which holds the teamspace's turn.
pub struct Locked {
    /// The open transaction.
    pub session: crate::store::WriteSession,
    locking_at: Millis,
}

/// Runs reconciliations against one store. Runs of one teamspace queue on their write
/// sessions (see [`Store::begin_write`]).
#[derive(Debug, Clone)]
pub struct Reconciler {
    store: Store,
}

impl Reconciler {
    /// A reconciler over `store`.
    pub fn new(store: Store) -> Self {
        Reconciler { store }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Plans `desired` for the request's source and applies it, or records it as a dry run or
    /// a held run. Returns the run's report; a guard trip is a report with outcome `aborted`.
    #[tracing::instrument(skip_all, fields(teamspace = %request.teamspace, source = %request.source, trigger = request.trigger.as_str()))]
    pub async fn run(&self, request: &RunRequest, desired: Desired) -> Result<RunReport, ReconcileError> {
        self.run_with(request, desired, None).await
    }

    /// Records the request's run as `running` before its source is read, so a process that
    /// dies mid-run leaves a trace: the next [`start`](Self::start) (or `serve` at start-up)
    /// marks such runs `failed` once their process is gone. Returns the request, which the
    /// run then completes. Runs that are one short transaction (SCIM, manual, approvals)
    /// skip this: they are recorded whole or not at all.
    pub async fn start(&self, request: RunRequest) -> Result<RunRequest, ReconcileError> {
        self.store.fail_abandoned_runs(Millis::now()).await?;
        let mut session = self.store.begin_write(&request.teamspace).await?;
        let source = session.ensure_source(&request.source, request.requested_at).await?;
        if let Some(running) = session.running_elsewhere(source.id, Millis::now()).await? {
            return Err(ReconcileError::AlreadyRunning { source_name: request.source.clone(), run: running });
        }
        let input = if request.source.kind().is_snapshot_kind() { RunInput::Snapshot } else { RunInput::Deltas };
        let run = request.new_run(session.teamspace().id, &source, input);
        let started = session.start_run(&run).await?;
        tracing::debug!(run_id = started.0, teamspace = %request.teamspace, source = %request.source, "run started");
        tokio::spawn(keep_beating(self.store.clone(), started));
        Ok(RunRequest { started: Some(started), ..request })
    }

    /// Takes the teamspace's run lock and the database's write turn: everything done with the
    /// returned session, and the run [`run_locked`](Self::run_locked) then applies, commits
    /// as one transaction (SCIM uses this to store a resource and its member change together).
    pub async fn lock(&self, teamspace: &str) -> Result<Locked, ReconcileError> {
        let locking_at = Millis::now();
        let session = self.store.begin_write(teamspace).await?;
        Ok(Locked { session, locking_at })
    }

    /// `approves`: the held run and the source claims version it was planned against.
    async fn run_with(
        &self,
        request: &RunRequest,
        desired: Desired,
        approves: Option<(RunId, i64)>,
    ) -> Result<RunReport, ReconcileError> {
        let locked = self.lock(&request.teamspace).await?;
        self.run_locked(locked, request, desired, approves).await
    }

    /// Plans `desired` within a session from [`lock`](Self::lock) and applies (or records) it,
    /// committing whatever else the session wrote.
    pub async fn run_locked(
        &self,
        locked: Locked,
        request: &RunRequest,
        desired: Desired,
        approves: Option<(RunId, i64)>,
    ) -> Result<RunReport, ReconcileError> {
        let Locked { mut session, locking_at: started_at } = locked;
        let (is_snapshot, input_len) = match &desired {
            Desired::Snapshot(claims) => (true, claims.len() as u64),
            Desired::Deltas(deltas) => (false, deltas.len() as u64),
        };
        let snapshot_len = if is_snapshot { input_len } else { 0 };
        // Everything from here to the commit sees one consistent state: the session holds
        // the database's write lock.
        let source = session.ensure_source(&request.source, started_at).await?;
        if let Some((held, planned_version)) = approves {
            if source.version != planned_version {
                return Err(stale_plan(held, &request.source, planned_version, source.version));
            }
        }
        let teamspace = session.teamspace().clone();
        let digest = match &desired {
            Desired::Snapshot(claims) if request.source.kind().is_snapshot_kind() => Some(snapshot_digest(claims)),
            // A merge import; not SCIM or manual batches, whose inputs never repeat whole.
            Desired::Deltas(deltas) if request.source.kind() == SourceKind::Csv => merge_digest(deltas),
            _ => None,
        };
        // The same snapshot as this source last applied, with nothing applied since: planning
        // is idempotent, so the plan is empty and loading the teamspace can be skipped.
        let unchanged_snapshot = digest.is_some() && source.last_snapshot == digest.map(|d| (d, teamspace.version));
        let over_base = if unchanged_snapshot { None } else { base_diff(request, &desired, &source, &teamspace) };
        let mut phases = Phases::starting(request.requested_at, started_at);
        let (plan, weighed) = if unchanged_snapshot {
            tracing::debug!("input unchanged since this source last applied it; nothing to plan");
            phases.locked = Millis::now();
            (phases.sorted, phases.loaded, phases.planned) = (phases.locked, phases.locked, phases.locked);
            let plan = Plan { changes: Vec::new(), unchanged: input_len };
            (plan, guard_input(request, &teamspace, is_snapshot, snapshot_len, snapshot_len, 0))
        } else if let Some(diff) = over_base {
            tracing::debug!(changes = diff.deltas.len(), "planning the snapshot as its difference from the last one");
            phases.locked = Millis::now();
            let (mut plan, _) =
                plan_by_join(&mut session, source.id, Desired::Deltas(diff.deltas), &mut phases).await?;
            plan.unchanged += diff.same;
            session.resolve_attributes(&mut plan).await?;
            let members = session.count_members().await?;
            (plan, guard_input(request, &teamspace, true, snapshot_len, diff.base_len, members))
        } else {
            phases.locked = Millis::now();
            let (mut plan, joined) = plan_by_join(&mut session, source.id, desired, &mut phases).await?;
            session.resolve_attributes(&mut plan).await?;
            (plan, guard_input(request, &teamspace, is_snapshot, snapshot_len, joined.claimed, joined.members))
        };
        let verdict = guard::check(&plan, weighed);

        let input = if is_snapshot { RunInput::Snapshot } else { RunInput::Deltas };
        let run = NewRun {
            approves: approves.map(|(held, _)| held),
            snapshot_digest: digest,
            ..request.new_run(teamspace.id, &source, input)
        };
        let (outcome, reason, cleared) = match (request.options.dry_run, verdict) {
            // A dry run says what the guard would do but never holds a plan for approval.
            (true, verdict) => {
                (Outcome::DryRun, verdict.err().map(|t| format!("a real run would be held back: {t}")), None)
            }
            (false, Err(trip)) => (Outcome::Aborted, Some(trip.to_string()), None),
            (false, Ok(cleared)) => (Outcome::Applied, None, Some(cleared)),
        };
        let run_id = match cleared {
            Some(cleared) => session.apply(&run, cleared, Millis::now()).await?,
            None => {
                let end = RunEnd { outcome, plan: Some(&plan), reason: reason.as_deref() };
                session.record_run(&run, end, Millis::now()).await?
            }
        };
        if outcome == Outcome::Aborted {
            tracing::warn!(run_id = run_id.0, reason = reason.as_deref().unwrap_or(""), "run held back by a guard");
        }
        phases.log_finished(run_id, outcome, plan.counts(), unchanged_snapshot, Millis::now());
        Ok(request.report(run_id, outcome, reason, plan))
    }

    /// Records a run whose source could not be read completely: outcome `failed`, nothing changed.
    pub async fn record_failure(
        &self,
        request: &RunRequest,
        input: RunInput,
        reason: &str,
    ) -> Result<RunReport, ReconcileError> {
        let mut session = self.store.begin_write(&request.teamspace).await?;
        let source = session.ensure_source(&request.source, request.requested_at).await?;
        let run = request.new_run(session.teamspace().id, &source, input);
        let end = RunEnd { outcome: Outcome::Failed, plan: None, reason: Some(reason) };
        let run_id = session.record_run(&run, end, Millis::now()).await?;
        tracing::warn!(run_id = run_id.0, teamspace = %request.teamspace, source = %request.source, reason, "run failed; nothing changed");
        Ok(request.report(run_id, Outcome::Failed, Some(reason.to_owned()), Plan::default()))
    }

    /// Applies the plan of a run a guard held back, if its source's claims have not changed
    /// since it was planned. The held claim changes are re-planned against the current state
    /// (so a member another source claimed meanwhile is kept) and applied without the guard.
    pub async fn approve(&self, held: RunId) -> Result<RunReport, ReconcileError> {
        let (run, _) = self.store.run(held).await?;
        if !run.outcome.is(Outcome::Aborted) {
            return Err(ReconcileError::Refused(format!(
                "run {held} is `{}`; only runs held back by a guard (`aborted`) can be approved",
                run.outcome
            )));
        }
        if let Some(by) = run.approved_by_run_id {
            return Err(ReconcileError::Refused(format!("run {held} was already approved by run {by}")));
        }
        let source: SourceName =
            run.source.parse().map_err(|e: String| ReconcileError::Store(StoreError::corrupt("sources", e)))?;
        let now_version = self.store.source_version(run.source_id).await?;
        if now_version != run.source_version {
            return Err(stale_plan(held, &source, run.source_version, now_version));
        }
        let deltas = self
            .store
            .planned_changes(held, i64::MAX)
            .await?
            .0
            .into_iter()
            .map(|change| -> Result<Delta, StoreError> {
                if change.claim == Some(ClaimChange::Drop) {
                    return Ok(Delta::Drop(change.oid));
                }
                Ok(Delta::Upsert(DesiredClaim {
                    oid: change.oid,
                    email: change.email.parse().map_err(|e| StoreError::corrupt("planned_changes.email", e))?,
                    display_name: change.display_name.map(DisplayName::from_stored),
                }))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let request = RunRequest::new(run.teamspace, source, Trigger::Approve)
            .with_details(serde_json::json!({ "approves_run_id": held }));
        self.run_with(&request, Desired::Deltas(deltas), Some((held, run.source_version))).await
    }
}

fn stale_plan(held: RunId, source: &SourceName, planned: i64, now: i64) -> ReconcileError {
    ReconcileError::Refused(format!(
        "source {source} changed since run {held} was planned (claims version {planned} → {now}); \
         the held plan is stale. Run the source again to get a fresh plan"
    ))
}

/// A snapshot as its difference from the request's base (see
/// [`RunRequest::with_snapshot_base`]).
struct BaseDiff {
    /// Claims added or changed (upserts) and claims gone (drops).
    deltas: Vec<Delta>,
    /// Claims the same in both.
    same: u64,
    /// Claims in the base: the claims the source holds now.
    base_len: u64,
}

/// The difference from the request's base to `desired`, when planning it plans the same as
/// planning the whole snapshot: the base is the snapshot this source last applied (its digest
/// is on the source) with the teamspace unchanged since, and both are sorted by oid, each oid
/// once, so one merge walk tells them apart.
fn base_diff(
    request: &RunRequest,
    desired: &Desired,
    source: &SourceRecord,
    teamspace: &TeamspaceRecord,
) -> Option<BaseDiff> {
    let (Desired::Snapshot(claims), Some(base)) = (desired, request.snapshot_base.as_deref()) else {
        return None;
    };
    let ascending = |claims: &[DesiredClaim]| claims.windows(2).all(|pair| pair[0].oid < pair[1].oid);
    if !request.source.kind().is_snapshot_kind()
        || source.last_snapshot != Some((snapshot_digest(base), teamspace.version))
        || !ascending(claims)
        || !ascending(base)
    {
        return None;
    }
    let mut diff = BaseDiff { deltas: Vec::new(), same: 0, base_len: base.len() as u64 };
    let (mut old, mut new) = (base.iter().peekable(), claims.iter().peekable());
    loop {
        match (old.peek(), new.peek()) {
            (Some(was), Some(now)) if was.oid == now.oid => {
                if was == now {
                    diff.same += 1;
                } else {
                    diff.deltas.push(Delta::Upsert((*now).clone()));
                }
                old.next();
                new.next();
            }
            (Some(was), Some(now)) if was.oid < now.oid => {
                diff.deltas.push(Delta::Drop(was.oid));
                old.next();
            }
            (Some(was), None) => {
                diff.deltas.push(Delta::Drop(was.oid));
                old.next();
            }
            (_, Some(now)) => {
                diff.deltas.push(Delta::Upsert((*now).clone()));
                new.next();
            }
            (None, None) => return Some(diff),
        }
    }
}

/// Plans `desired` against the members it may touch, joined page by page as they are read.
async fn plan_by_join(
    session: &mut WriteSession,
    source: SourceKey,
    desired: Desired,
    phases: &mut Phases,
) -> Result<(Plan, Joined), ReconcileError> {
    let keyed = match &desired {
        Desired::Deltas(deltas) => keyed_oids(deltas),
        Desired::Snapshot(_) => None,
    };
    let scope = keyed.as_deref().map_or(Scope::All, Scope::Oids);
    let planner = Planner::new(source, session.source_kinds().await?);
    let mut planning = planner.start(desired);
    phases.sorted = Millis::now();
    session.read_current(scope, |page| planning.join(page)).await?;
    phases.loaded = Millis::now();
    let planned = planning.finish();
    phases.planned = Millis::now();
    Ok(planned)
}

/// The oids of a delta batch small enough to look up one by one. Larger batches (a merge
/// import) read the whole teamspace in one ordered scan instead of thousands of keyed
/// look-ups, and so need no list of their oids (16 MB at a million).
fn keyed_oids(deltas: &[Delta]) -> Option<Vec<Oid>> {
    (deltas.len() <= WHOLE_TEAMSPACE_ABOVE).then(|| deltas.iter().map(delta_oid).collect())
}

fn delta_oid(delta: &Delta) -> Oid {
    match delta {
        Delta::Upsert(claim) => claim.oid,
        Delta::Drop(oid) => *oid,
    }
}

/// When each phase of a run began and ended, for the "run finished" line.
#[derive(Debug)]
struct Phases {
    /// The source started being read.
    requested: Millis,
    /// The write lock was asked for.
    locking: Millis,
    /// The lock was held.
    locked: Millis,
    /// The input was sorted for the join.
    sorted: Millis,
    /// The teamspace was read, and joined with the input as it came.
    loaded: Millis,
    /// The plan was made.
    planned: Millis,
}

impl Phases {
    fn starting(requested: Millis, locking: Millis) -> Self {
        Phases { requested, locking, locked: locking, sorted: locking, loaded: locking, planned: locking }
    }

    fn log_finished(
        &self,
        run_id: RunId,
        outcome: Outcome,
        counts: Counts,
        unchanged_snapshot: bool,
        finished: Millis,
    ) {
        tracing::info!(
            run_id = run_id.0,
            outcome = outcome.as_str(),
            added = counts.added,
            removed = counts.removed,
            updated = counts.updated,
            unchanged = counts.unchanged,
            duration_ms = finished.since(self.requested),
            read_ms = self.locking.since(self.requested),
            unchanged_snapshot,
            lock_wait_ms = self.locked.since(self.locking),
            load_ms = self.loaded.since(self.sorted),
            // Sorting the input before the teamspace is read, and finishing the plan after.
            plan_ms = self.sorted.since(self.locked) + self.planned.since(self.loaded),
            write_ms = finished.since(self.planned),
            "run finished"
        );
    }
}

/// What the mass-removal guard weighs: the plan's source holds `source_claims` of the
/// teamspace's `current_members`.
fn guard_input(
    request: &RunRequest,
    teamspace: &TeamspaceRecord,
    is_snapshot: bool,
    snapshot_len: u64,
    source_claims: u64,
    current_members: u64,
) -> GuardInput {
    GuardInput {
        is_snapshot: is_snapshot && request.source.kind().is_snapshot_kind(),
        snapshot_len,
        source_claims,
        current_members,
        max_removals: teamspace.max_removals,
        allow_mass_removal: request.options.allow_mass_removal,
    }
}

/// Renews a started run's heartbeat until it is no longer `running`, so replicas on other
/// hosts can tell it from a run whose process died (`store::RUN_LEASE`). Ends with the run,
/// or with the process.
async fn keep_beating(store: Store, run: RunId) {
    loop {
        tokio::time::sleep(crate::store::HEARTBEAT_EVERY).await;
        match store.beat(run, Millis::now()).await {
            Ok(true) => {}
            Ok(false) => return,
            // A missed beat is not fatal: the lease allows several.
            Err(error) => tracing::warn!(run_id = run.0, %error, "could not renew the heartbeat of a running run"),
        }
    }
}
