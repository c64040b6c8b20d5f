//! The SCIM write path. Entra pushes many changes at once, and every change is a write
//! transaction through the reconcile core; one at a time, each would pay for its own
//! transaction and run. So each teamspace has one writer task: it takes the requests waiting
//! (up to [`MAX_BATCH`]), applies them in order in one transaction, turns their member changes
//! into one reconcile run, and commits once. Every request is answered only after that commit.
//!
//! A request that is refused (a 409, a bad PATCH, a stale If-Match) gets its own error and the
//! others go on: each request makes one write, which the store applies whole or not at all
//! ([`crate::store::ScimPut`]). Consecutive user creations (most of what Entra sends) read
//! nothing first, so their writes go to the store as one list, each with its own outcome. A
//! database failure fails the whole batch, which is then rolled back whole.

use std::collections::HashMap;

use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use super::handlers::{check_if_match, kind_of};
use super::patch::{self, PatchRequest};
use super::provision::{deltas_for, user_facts, UserFacts};
use super::resource::normalize;
use super::schema::ResourceType;
use super::{ScimError, ScimState, ScimTeamspace};
use crate::clock::Millis;
use crate::domain::{Oid, SourceName, Trigger};
use crate::plan::Desired;
use crate::reconcile::{Locked, Reconciler, RunRequest};
use crate::store::{GroupRow, ResourceKind, ScimPut, StoreError, StoredResource, UniqueKey, UserRow};

/// Requests committed together, at most.
pub const MAX_BATCH: usize = 64;
/// Requests waiting for a teamspace's writer, at most; more wait to be queued.
const QUEUE: usize = 1024;
/// Operations named in a batch run's details, at most.
const DETAILS_SHOWN: usize = 50;

type Result<T, E = ScimError> = std::result::Result<T, E>;

/// What a write does to the stored body.
pub enum ResourceChange {
    /// POST.
    Create(Value),
    /// PUT.
    Replace(Value),
    /// PATCH.
    Patch(PatchRequest),
    /// DELETE.
    Delete,
}

impl ResourceChange {
    fn name(&self) -> &'static str {
        match self {
            ResourceChange::Create(_) => "create",
            ResourceChange::Replace(_) => "replace",
            ResourceChange::Patch(_) => "patch",
            ResourceChange::Delete => "delete",
        }
    }
}

/// One write request.
pub(super) struct Job {
    teamspace: ScimTeamspace,
    rt: ResourceType,
    id: Option<String>,
    if_match: Option<String>,
    change: ResourceChange,
    reply: oneshot::Sender<Result<Option<StoredResource>>>,
}

impl Job {
    /// A POST of a user: it reads nothing before its write.
    fn creates_user(&self) -> bool {
        self.id.is_none() && matches!(self.change, ResourceChange::Create(_)) && kind_of(self.rt) == ResourceKind::User
    }
}

/// What applying one request left for the batch.
struct Applied {
    oids: Vec<Oid>,
    not_a_member: Option<String>,
    stored: Option<StoredResource>,
    operation: Value,
}

/// Writers by teamspace id.
pub type Writers = std::sync::Arc<std::sync::Mutex<HashMap<i64, mpsc::Sender<Job>>>>;

/// Hands a write to the teamspace's writer and waits for it to be committed. Returns the stored
/// resource (`None` after a delete).
pub async fn submit(
    state: &ScimState,
    teamspace: &ScimTeamspace,
    rt: ResourceType,
    id: Option<String>,
    if_match: Option<String>,
    change: ResourceChange,
) -> Result<Option<StoredResource>> {
    let (reply, answer) = oneshot::channel();
    let job = Job { teamspace: teamspace.clone(), rt, id, if_match, change, reply };
    let sender = writer_for(state, teamspace.teamspace_id)?;
    sender.send(job).await.map_err(|_| ScimError::internal("the SCIM writer stopped"))?;
    answer.await.map_err(|_| ScimError::internal("the SCIM writer dropped a request"))?
}

fn writer_for(state: &ScimState, teamspace_id: i64) -> Result<mpsc::Sender<Job>> {
    let mut writers = state.writers.lock().map_err(|_| ScimError::internal("SCIM writers lock poisoned"))?;
    if let Some(sender) = writers.get(&teamspace_id).filter(|s| !s.is_closed()) {
        return Ok(sender.clone());
    }
    let (sender, receiver) = mpsc::channel(QUEUE);
    tokio::spawn(run(state.reconciler.clone(), receiver));
    writers.insert(teamspace_id, sender.clone());
    Ok(sender)
}

async fn run(reconciler: Reconciler, mut receiver: mpsc::Receiver<Job>) {
    let mut expected = 1;
    while let Some(first) = receiver.recv().await {
        let jobs = gather(&mut receiver, first, expected, FILL_WAIT).await;
        let taken = jobs.len();
        commit_batch(&reconciler, jobs).await;
        // Requests that came in while the batch ran were sent by clients the batch did not
        // answer: with the ones it answered, that is how many write at once (`gather` caps
        // a batch at MAX_BATCH).
        expected = taken + receiver.len();
    }
}

/// How long a batch may wait for the requests it expects. Clients on this host answer
/// within a fraction of it; tokio's timer ticks in milliseconds, so shorter would round up.
const FILL_WAIT: std::time::Duration = std::time::Duration::from_millis(1);

/// The batch that starts with `first`: the requests waiting, and then, while fewer than
/// `expected` (how many clients wrote at once around the last batch) have come, those that
/// arrive within `wait` ([`FILL_WAIT`]).
///
/// A batch's fixed cost (its lock, its run, its commit: on PostgreSQL a dozen round trips)
/// is most of what it costs, so clients that write at once should share one batch. Without
/// the wait, 16 clients split into two halves that take turns, each batch holding the half
/// that came back while the other half was committed; with it, the clients just answered are
/// waited for, and one batch holds all 16 (BENCHMARKS.md, SCIM). A lone client does not wait:
/// no request arrives while its batch runs, so `expected` is 1 (after a burst, the first
/// request waits once, and that batch sets `expected` again).
async fn gather<T>(receiver: &mut mpsc::Receiver<T>, first: T, expected: usize, wait: std::time::Duration) -> Vec<T> {
    let mut jobs = vec![first];
    // After each take, handlers about to submit get a turn. Two yields, the last one just
    // before the batch starts, is what was measured at 16 connections (BENCHMARKS.md); one
    // measured within noise of it, a little lower.
    for _ in 0..2 {
        take_waiting(receiver, &mut jobs);
        tokio::task::yield_now().await;
    }
    let deadline = tokio::time::Instant::now() + wait;
    while jobs.len() < expected.min(MAX_BATCH) {
        match tokio::time::timeout_at(deadline, receiver.recv()).await {
            Ok(Some(job)) => {
                jobs.push(job);
                take_waiting(receiver, &mut jobs);
            }
            // The wait is over, or the server is stopping: the batch goes as it is.
            Ok(None) | Err(_) => break,
        }
    }
    jobs
}

/// Adds the requests already waiting to `jobs`, up to [`MAX_BATCH`].
fn take_waiting<T>(receiver: &mut mpsc::Receiver<T>, jobs: &mut Vec<T>) {
    while jobs.len() < MAX_BATCH {
        match receiver.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => break,
        }
    }
}

async fn commit_batch(reconciler: &Reconciler, jobs: Vec<Job>) {
    let teamspace = jobs[0].teamspace.clone();
    let mut locked = match reconciler.lock(&teamspace.name).await {
        Ok(locked) => locked,
        Err(error) => {
            let error = ScimError::from(error);
            for job in jobs {
                let _ = job.reply.send(Err(error.clone()));
            }
            return;
        }
    };
    let mut replies = Vec::with_capacity(jobs.len());
    let mut oids = Vec::new();
    let mut not_members = Vec::new();
    let mut operations = Vec::new();
    let mut failed: Option<ScimError> = None;
    let mut jobs = jobs.into_iter().peekable();
    while let Some(first) = jobs.next() {
        // After a database failure the batch is rolled back: the rest get that same error.
        if let Some(error) = &failed {
            replies.push((first.reply, Err(error.clone())));
            continue;
        }
        // Consecutive user creations read nothing, so they are written together.
        let mut group = vec![first];
        while group[0].creates_user() && jobs.peek().is_some_and(Job::creates_user) {
            group.extend(jobs.next());
        }
        let outcomes = match group.as_slice() {
            [single] => vec![apply(&mut locked, single).await],
            creations => match create_users(&mut locked, creations).await {
                Ok(outcomes) => outcomes,
                Err(error) => creations.iter().map(|_| Err(error.clone())).collect(),
            },
        };
        for (job, outcome) in group.into_iter().zip(outcomes) {
            let outcome = match outcome {
                Ok(applied) => {
                    oids.extend(applied.oids);
                    not_members.extend(applied.not_a_member);
                    operations.push(applied.operation);
                    Ok(applied.stored)
                }
                // The database failed mid-write: nothing of the batch may be committed.
                Err(error) if error.status.is_server_error() => {
                    failed = Some(error.clone());
                    Err(error)
                }
                Err(refused) => Err(refused),
            };
            replies.push((job.reply, outcome));
        }
    }
    let committed = match failed {
        Some(error) => Err(error),
        None => finish(reconciler, locked, &teamspace, oids, not_members, operations).await,
    };
    for (reply, outcome) in replies {
        let outcome = match (&committed, outcome) {
            (Err(error), Ok(_)) => Err(error.clone()),
            (_, outcome) => outcome,
        };
        let _ = reply.send(outcome);
    }
}

/// Turns the batch's member changes into one run (or commits the resources alone).
async fn finish(
    reconciler: &Reconciler,
    mut locked: Locked,
    teamspace: &ScimTeamspace,
    oids: Vec<Oid>,
    not_members: Vec<String>,
    operations: Vec<Value>,
) -> Result<()> {
    let deltas = deltas_for(&mut locked.session, &teamspace.policy, oids).await?;
    // A resource change that changes no member needs no run, unless it leaves an active user
    // outside: that run (with no changes) is how `c7sync runs show` tells the admin why.
    if deltas.is_empty() && not_members.is_empty() {
        locked.session.commit().await?;
        return Ok(());
    }
    let mut details = serde_json::json!({
        "requests": operations.len(),
        "operations": operations.iter().take(DETAILS_SHOWN).collect::<Vec<_>>(),
    });
    if !not_members.is_empty() {
        details["not_a_member"] = serde_json::json!(not_members.iter().take(DETAILS_SHOWN).collect::<Vec<_>>());
    }
    let request = RunRequest::new(&teamspace.name, SourceName::scim(), Trigger::Scim).with_details(details);
    reconciler.run_locked(locked, &request, Desired::Deltas(deltas), None).await?;
    Ok(())
}

/// One request's resource change, inside the batch's transaction: everything that can refuse
/// it is checked before its one write (`scim_put` or `scim_delete`), which is applied whole or
/// not at all, so a refused request leaves nothing behind.
async fn apply(locked: &mut Locked, job: &Job) -> Result<Applied> {
    let (teamspace, rt) = (&job.teamspace, job.rt);
    let kind = kind_of(rt);
    let previous = match &job.id {
        Some(id) => Some(
            locked
                .session
                .scim_get(kind, id)
                .await?
                .ok_or_else(|| ScimError::not_found(format!("{} {id} not found", rt.name)))?,
        ),
        None => None,
    };
    if let Some(previous) = &previous {
        check_if_match(job.if_match.as_deref(), previous.version)?;
    }
    let previous_body: Option<Map<String, Value>> = previous
        .as_ref()
        .map(|p| serde_json::from_str(&p.resource))
        .transpose()
        .map_err(|e| ScimError::internal(format!("stored resource: {e}")))?;
    let id = job.id.clone().unwrap_or_else(new_id);
    let body = match &job.change {
        ResourceChange::Create(input) | ResourceChange::Replace(input) => Some(new_body(rt, input)?),
        ResourceChange::Patch(request) => {
            let mut body = previous_body.clone().unwrap_or_default();
            patch::apply(rt, &mut body, request.clone())?;
            Some(body)
        }
        ResourceChange::Delete => None,
    };
    let now = Millis::now();
    let (oids, not_a_member, stored) = match kind {
        ResourceKind::User => write_user(locked, teamspace, &id, previous_body.as_ref(), body.as_ref(), now).await?,
        ResourceKind::Group => {
            let (oids, stored) = write_group(locked, teamspace, &id, body.as_ref(), now).await?;
            (oids, None, stored)
        }
    };
    Ok(Applied { oids, not_a_member, stored, operation: operation(job, &id) })
}

/// A new resource's id: time-ordered (UUIDv7), so it goes at the end of the primary key's
/// B-tree instead of into a random page of it.
fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The body a POST or PUT stores: normalized, without the server's `id` and `meta`.
fn new_body(rt: ResourceType, input: &Value) -> Result<Map<String, Value>> {
    let mut body = normalize(rt, input.clone())?;
    body.retain(|k, _| k != "id" && k != "meta");
    Ok(body)
}

/// How a request is named in its run's details.
fn operation(job: &Job, id: &str) -> Value {
    serde_json::json!({ "resource": job.rt.name, "id": id, "operation": job.change.name() })
}

/// What one request changed: the oids whose claim may have changed, why the user is not a
/// member when that just became so, and the stored resource (`None` after a delete).
type Written = (Vec<Oid>, Option<String>, Option<StoredResource>);

/// Stores (or deletes) a user.
async fn write_user(
    locked: &mut Locked,
    teamspace: &ScimTeamspace,
    id: &str,
    previous: Option<&Map<String, Value>>,
    body: Option<&Map<String, Value>>,
    now: Millis,
) -> Result<Written> {
    let before: Option<UserFacts> = previous.map(|p| user_facts(p, &teamspace.policy));
    let session = &mut locked.session;
    let Some(body) = body else {
        session.scim_delete(ResourceKind::User, id).await?;
        return Ok((before.and_then(|b| b.oid).into_iter().collect(), None, None));
    };
    let user = user_to_store(teamspace, id, body)?;
    let stored = session.scim_put(ScimPut::User(&user.row), now).await;
    user_stored(user, before, stored, now)
}

/// The users created by consecutive requests, written together (one hand-off to the database
/// for all of them): each request keeps its own outcome, as if written one by one.
async fn create_users(locked: &mut Locked, jobs: &[Job]) -> Result<Vec<Result<Applied>>> {
    let now = Millis::now();
    let mut prepared = Vec::with_capacity(jobs.len());
    for job in jobs {
        let id = new_id();
        let user = match &job.change {
            ResourceChange::Create(input) => {
                new_body(job.rt, input).and_then(|body| user_to_store(&job.teamspace, &id, &body))
            }
            _ => Err(ScimError::internal("only creations are written together")),
        };
        prepared.push(user);
    }
    let rows: Vec<&UserRow> = prepared.iter().filter_map(|u| u.as_ref().ok()).map(|u| &u.row).collect();
    let mut stored = locked.session.scim_put_users(&rows, now).await?.into_iter();
    let mut applied = Vec::with_capacity(jobs.len());
    for (job, user) in jobs.iter().zip(prepared) {
        let outcome = user.and_then(|user| {
            let id = user.row.id.clone();
            let written = stored.next().ok_or_else(|| ScimError::internal("a user write has no outcome"))?;
            let (oids, not_a_member, stored) = user_stored(user, None, written, now)?;
            Ok(Applied { oids, not_a_member, stored, operation: operation(job, &id) })
        });
        applied.push(outcome);
    }
    Ok(applied)
}

/// A user as it will be stored, with what decides its claim.
struct UserToStore {
    row: UserRow,
    facts: UserFacts,
    not_a_member: Option<String>,
}

/// Checks a user's body and derives its row; refuses it before anything is written.
fn user_to_store(teamspace: &ScimTeamspace, id: &str, body: &Map<String, Value>) -> Result<UserToStore> {
    let user_name = body
        .get("userName")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ScimError::invalid_value("userName is required"))?
        .to_owned();
    if user_name.chars().any(char::is_control) {
        let shown = crate::log::escape_controls(&user_name);
        return Err(ScimError::invalid_value(format!("userName `{shown}` contains a control character")));
    }
    if let Some(name) = super::provision::display_name(body) {
        name.parse::<crate::domain::DisplayName>().map_err(|e| ScimError::invalid_value(e.to_string()))?;
    }
    let external_id = body.get("externalId").and_then(Value::as_str).map(str::to_owned);
    let facts = user_facts(body, &teamspace.policy);
    if facts.active && facts.claim.is_none() {
        tracing::warn!(
            teamspace = %teamspace.name,
            scim_user = id,
            user_name = %user_name,
            problem = facts.problem.as_deref().unwrap_or_default(),
            "SCIM user stored but not a member"
        );
    }
    let row = UserRow {
        id: id.to_owned(),
        user_name,
        external_id,
        display_name: body.get("displayName").and_then(Value::as_str).map(str::to_owned),
        active: facts.active,
        oid: facts.oid,
        member_problem: if facts.claim.is_none() { facts.problem.clone() } else { None },
        resource: Value::Object(body.clone()).to_string(),
    };
    let not_a_member = match (&facts.problem, facts.active && facts.claim.is_none()) {
        (Some(problem), true) => {
            Some(format!("SCIM user {id} ({}) is stored but not a member: {problem}", row.user_name))
        }
        _ => None,
    };
    Ok(UserToStore { row, facts, not_a_member })
}

/// What a user's write means for the batch; a refusal by a unique index is the client's 409.
fn user_stored(
    user: UserToStore,
    before: Option<UserFacts>,
    stored: Result<(i64, Millis), StoreError>,
    now: Millis,
) -> Result<Written> {
    let UserToStore { row, facts, not_a_member } = user;
    // The unique indexes decide: a violating statement changes nothing and the batch goes on.
    let (version, created_at) = match stored {
        Ok(stored) => stored,
        Err(StoreError::Duplicate(key @ (UniqueKey::ScimUserName | UniqueKey::ScimExternalId))) => {
            let (which, value) = match key {
                UniqueKey::ScimUserName => ("userName", row.user_name.as_str()),
                _ => ("externalId", row.external_id.as_deref().unwrap_or_default()),
            };
            return Err(ScimError::uniqueness(format!("{which} `{value}` is already used by another user")));
        }
        Err(other) => return Err(other.into()),
    };
    let stored = StoredResource { id: row.id, resource: row.resource, version, created_at, updated_at: now };
    // Only a change to what the claim depends on touches members; a new title does not.
    if before.as_ref() == Some(&facts) {
        return Ok((Vec::new(), None, Some(stored)));
    }
    Ok((before.and_then(|b| b.oid).into_iter().chain(facts.oid).collect(), not_a_member, Some(stored)))
}

/// Stores (or deletes) a group; with a `groups` policy, returns its members' oids before and
/// after (their claims depend on it).
async fn write_group(
    locked: &mut Locked,
    teamspace: &ScimTeamspace,
    id: &str,
    body: Option<&Map<String, Value>>,
    now: Millis,
) -> Result<(Vec<Oid>, Option<StoredResource>)> {
    let session = &mut locked.session;
    let mut oids =
        if teamspace.policy.groups.is_empty() { Vec::new() } else { session.scim_group_member_oids(id).await? };
    let Some(body) = body else {
        session.scim_delete(ResourceKind::Group, id).await?;
        return Ok((oids, None));
    };
    let display_name = body
        .get("displayName")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .ok_or_else(|| ScimError::invalid_value("displayName is required"))?
        .to_owned();
    let member_ids = body
        .get("members")
        .and_then(Value::as_array)
        .map(|members| members.iter().filter_map(|m| m.get("value")?.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let row = GroupRow {
        id: id.to_owned(),
        display_name,
        external_id: body.get("externalId").and_then(Value::as_str).map(str::to_owned),
        member_ids,
        resource: Value::Object(body.clone()).to_string(),
    };
    let (version, created_at) = session.scim_put(ScimPut::Group(&row), now).await?;
    if !teamspace.policy.groups.is_empty() {
        oids.extend(session.scim_group_member_oids(id).await?);
    }
    Ok((oids, Some(StoredResource { id: row.id, resource: row.resource, version, created_at, updated_at: now })))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::mpsc;
    use tokio::time::Instant;

    use super::{gather, MAX_BATCH};

    const WAIT: Duration = Duration::from_millis(10);

    #[tokio::test(start_paused = true)]
    async fn a_lone_client_never_waits() {
        let (_sender, mut receiver) = mpsc::channel(8);
        let start = Instant::now();
        let jobs = gather(&mut receiver, 1, 1, WAIT).await;
        assert_eq!(jobs, [1]);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_waits_for_the_clients_it_expects_and_no_longer() {
        let (sender, mut receiver) = mpsc::channel(8);
        sender.send(2).await.unwrap();
        let open = sender.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(3)).await;
            sender.send(3).await.unwrap();
            sender.send(4).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
            sender.send(5).await.unwrap();
        });
        let start = Instant::now();
        let jobs = gather(&mut receiver, 1, 4, WAIT).await;
        assert_eq!(jobs, [1, 2, 3, 4], "the batch starts once the expected four are there");
        assert_eq!(start.elapsed(), Duration::from_millis(3));
        let jobs = gather(&mut receiver, 10, 3, WAIT).await;
        assert_eq!(jobs, [10, 5], "a client that does not come is waited for at most WAIT");
        assert_eq!(start.elapsed(), Duration::from_millis(3) + WAIT);
        drop(open);
        let jobs = gather(&mut receiver, 11, 3, WAIT).await;
        assert_eq!(jobs, [11], "a server stopping does not wait");
        assert_eq!(start.elapsed(), Duration::from_millis(3) + WAIT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_takes_what_waits_up_to_its_limit_without_waiting() {
        let (sender, mut receiver) = mpsc::channel(2 * MAX_BATCH);
        for job in 1..2 * MAX_BATCH {
            sender.send(job).await.unwrap();
        }
        let start = Instant::now();
        let jobs = gather(&mut receiver, 0, 2 * MAX_BATCH, WAIT).await;
        assert_eq!(jobs, (0..MAX_BATCH).collect::<Vec<_>>());
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
