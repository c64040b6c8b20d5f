//! Runs in progress. A run that reads its source before planning is recorded as `running` as
//! it starts, owned by this process, and completed by the transaction that applies or
//! records it (`apply::insert_run`). A run whose owner died (killed, crashed, power cut) is
//! marked `failed` by the next process that starts a run or `serve`; nothing it planned was
//! written, because its changes and its completion commit together.

use super::apply::run_input;
use super::engine::Fields;
use super::{owner, NewRun, Store, StoreError, WriteSession};
use crate::clock::Millis;
use crate::domain::RunId;

/// The reason a run left `running` by a process that is gone is given.
pub const INTERRUPTED: &str = "interrupted: the process running it ended before the run finished; nothing was changed";

impl WriteSession {
    /// A run of `source_id` that another process on this host is running now, if any: a
    /// source never runs twice at once, across the processes sharing the database too.
    pub async fn running_elsewhere(&mut self, source_id: i64) -> Result<Option<RunId>, StoreError> {
        let running: Vec<(i64, Option<String>)> = on_tx!(&mut self.tx, c => sqlx::query_as("SELECT id, owner FROM runs WHERE source_id = $1 AND outcome = 'running'")
                .bind(source_id)
                .fetch_all(&mut *c)
                .await)?;
        Ok(running
            .into_iter()
            .find(|(_, owner)| owner.as_deref().is_some_and(|o| o != owner::current() && owner::is_alive_here(o)))
            .map(|(id, _)| RunId(id)))
    }

    /// Records `run` as `running`, owned by this process, and commits.
    pub async fn start_run(mut self, run: &NewRun) -> Result<RunId, StoreError> {
        let id: i64 = on_tx!(&mut self.tx, c => sqlx::query_scalar(
            "INSERT INTO runs (teamspace_id, source_id, trigger, input, outcome, started_at, source_version, details, owner) \
             VALUES ($1, $2, $3, $4, 'running', $5, $6, $7, $8) RETURNING id",
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
    /// Marks `failed` every `running` run whose owning process has certainly ended, and
    /// returns them. Takes the write lock only when there is one to mark.
    pub async fn fail_abandoned_runs(&self, now: Millis) -> Result<Vec<RunId>, StoreError> {
        on_pool!(&self.pool, pool => {
        let running = sqlx::query("SELECT id, owner FROM runs WHERE outcome = 'running'").fetch_all(pool).await?;
        let mut abandoned = Vec::new();
        for row in &running {
            let owner: Option<String> = row.field_at(1)?;
            if owner.as_deref().is_some_and(owner::is_gone) {
                abandoned.push(RunId(row.field_at(0)?));
            }
        }
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
        })
    }
}
