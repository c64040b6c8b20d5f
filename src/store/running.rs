//! Runs in progress. A run that reads its source before planning is recorded as `running` as
//! it starts, owned by this process, and completed by the transaction that applies or
//! records it (`apply::insert_run`). A run whose owner died (killed, crashed, power cut) is
//! marked `failed` by the next process that starts a run or `serve`; nothing it planned was
//! written, because its changes and its completion commit together. A process on this host
//! tells a dead owner from `/proc`; a replica on another host, from the run's heartbeat,
//! which a live owner renews every [`HEARTBEAT_EVERY`] and a dead one stops renewing.

use std::time::Duration;

use super::apply::run_input;
use super::{owner, NewRun, Store, StoreError, WriteSession};
use crate::clock::Millis;
use crate::domain::RunId;

/// How often the owner of a running run renews its heartbeat.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);

/// How old a heartbeat may be before a replica on another host judges its run abandoned: six
/// missed beats, so a stalled disk or a paused VM is not mistaken for a dead process.
pub const RUN_LEASE: Duration = Duration::from_secs(60);

/// A `running` run, as the liveness checks read it.
#[derive(Debug, sqlx::FromRow)]
struct RunningRow {
    id: i64,
    owner: Option<String>,
    heartbeat_at: Option<i64>,
    started_at: i64,
}

/// The columns [`RunningRow`] reads.
const RUNNING_COLUMNS: &str = "SELECT id, owner, heartbeat_at, started_at FROM runs";

impl RunningRow {
    /// Whether the run, owned by a process this one cannot look up (on another host), still
    /// beats.
    fn beats(&self, now: Millis) -> bool {
        let lease = i64::try_from(RUN_LEASE.as_millis()).unwrap_or(i64::MAX);
        now.0.saturating_sub(self.heartbeat_at.unwrap_or(self.started_at)) <= lease
    }

    /// Whether the run's owner is another process that is alive (or, elsewhere, still beating).
    fn is_live_elsewhere(&self, now: Millis) -> bool {
        self.owner.as_deref().is_some_and(|o| {
            o != owner::current() && (owner::is_alive_here(o) || (owner::is_unknown(o) && self.beats(now)))
        })
    }

    /// Whether the run was left behind: its owner has ended (here), or stopped beating
    /// (elsewhere).
    fn is_abandoned(&self, now: Millis) -> bool {
        self.owner.as_deref().is_some_and(|o| owner::is_gone(o) || (owner::is_unknown(o) && !self.beats(now)))
    }
}

/// The reason a run left `running` by a process that is gone is given.
pub const INTERRUPTED: &str = "interrupted: the process running it ended before the run finished; nothing was changed";

impl WriteSession {
    /// A run of `source_id` that another live process is running now, if any: a source never
    /// runs twice at once, across the processes and hosts sharing the database too.
    pub async fn running_elsewhere(&mut self, source_id: i64, now: Millis) -> Result<Option<RunId>, StoreError> {
        let sql = format!("{RUNNING_COLUMNS} WHERE source_id = $1 AND outcome = 'running'");
        let running: Vec<RunningRow> =
            on_tx!(&mut self.tx, c => sqlx::query_as(&sql).bind(source_id).fetch_all(&mut *c).await)?;
        Ok(running.into_iter().find(|run| run.is_live_elsewhere(now)).map(|run| RunId(run.id)))
    }

    /// Records `run` as `running`, owned by this process, and commits.
    pub async fn start_run(mut self, run: &NewRun) -> Result<RunId, StoreError> {
        let id: i64 = on_tx!(&mut self.tx, c => sqlx::query_scalar(
            "INSERT INTO runs (teamspace_id, source_id, trigger, input, outcome, started_at, source_version, details, owner, \
                 heartbeat_at) \
             VALUES ($1, $2, $3, $4, 'running', $5, $6, $7, $8, $5) RETURNING id",
        )
        .bind(run.teamspace_id)
        .bind(run.source_id)
        .bind(run.trigger.as_str())
        .bind(run_input(run.input))
        .bind(run.started_at.0)
        .bind(run.source_version)
        .bind(run.details.as_ref().map(|d| d.to_string()))
        .bind(owner::current())
        .fetch_one(&mut *c)
        .await)?;
        super::session::commit(self.tx, &self.health).await?;
        Ok(RunId(id))
    }
}

impl Store {
    /// Renews the heartbeat of a run this process is running; false once it is no longer
    /// `running` (finished, or marked failed by another process), when beating should stop.
    pub async fn beat(&self, run: RunId, now: Millis) -> Result<bool, StoreError> {
        let renewed = on_pool!(&self.pool, pool => sqlx::query(
            "UPDATE runs SET heartbeat_at = $1 WHERE id = $2 AND outcome = 'running' AND owner = $3"
        )
        .bind(now.0)
        .bind(run.0)
        .bind(owner::current())
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))?;
        Ok(renewed == 1)
    }

    /// Marks `failed` every `running` run whose owning process has certainly ended (or, on
    /// another host, stopped beating for longer than [`RUN_LEASE`]), and
    /// returns them. Takes the write lock only when there is one to mark.
    pub async fn fail_abandoned_runs(&self, now: Millis) -> Result<Vec<RunId>, StoreError> {
        let sql = format!("{RUNNING_COLUMNS} WHERE outcome = 'running'");
        let running: Vec<RunningRow> = on_pool!(&self.pool, pool => sqlx::query_as(&sql).fetch_all(pool).await)?;
        let abandoned: Vec<RunId> =
            running.into_iter().filter(|run| run.is_abandoned(now)).map(|run| RunId(run.id)).collect();
        if abandoned.is_empty() {
            return Ok(abandoned);
        }
        let mut tx = self.pool.begin_write().await?;
        let mut marked = Vec::with_capacity(abandoned.len());
        for run in abandoned {
            // Unless it finished (or was marked) since it was read.
            let done = on_tx!(&mut tx, c => sqlx::query(
                "UPDATE runs SET outcome = 'failed', finished_at = $1, reason = $2, owner = NULL \
                 WHERE id = $3 AND outcome = 'running'",
            )
            .bind(now.0)
            .bind(INTERRUPTED)
            .bind(run.0)
            .execute(&mut *c)
            .await.map(|done| done.rows_affected()))?;
            if done == 1 {
                marked.push(run);
            }
        }
        super::session::commit(tx, &self.health).await?;
        for run in &marked {
            tracing::warn!(run_id = run.0, "a run was left running by a process that has ended; marked failed");
        }
        Ok(marked)
    }
}
