//! Scheduled ticks shared by replicas: each tick of a source runs on the one `serve` that
//! claims it first. Every replica computes the same tick times from the source's schedule, so
//! the claim is a plain insert keyed on the tick; the database's uniqueness check decides.

use super::{owner, Store, StoreError};
use crate::clock::Millis;

/// Claims older than this are deleted as new ones are made: only the last tick matters.
const KEEP_MS: i64 = 7 * 24 * 3_600_000;

impl Store {
    /// Claims the tick at `tick_at` of `source` in `teamspace` for this process; `false` when
    /// another replica (or an earlier run of this process) already has it.
    pub async fn claim_tick(
        &self,
        teamspace: &str,
        source: &str,
        tick_at: Millis,
        now: Millis,
    ) -> Result<bool, StoreError> {
        self.health.check_file()?;
        let mut tx = self.health.record(self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(StoreError::from))?;
        sqlx::query("DELETE FROM schedule_ticks WHERE teamspace = $1 AND source = $2 AND tick_at < $3")
            .bind(teamspace)
            .bind(source)
            .bind(now.0 - KEEP_MS)
            .execute(&mut *tx)
            .await?;
        let claimed = sqlx::query(
            "INSERT INTO schedule_ticks (teamspace, source, tick_at, claimed_by, claimed_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(teamspace)
        .bind(source)
        .bind(tick_at.0)
        .bind(owner::current())
        .bind(now.0)
        .execute(&mut *tx)
        .await?;
        super::session::commit(tx, &self.health).await?;
        Ok(claimed.rows_affected() == 1)
    }
}
