//! What processes sharing one database agree on through it: each scheduled tick runs on the
//! one `serve` that claims it first (every replica computes the same tick times from the
//! source's schedule, so the claim is an insert keyed on the tick and the uniqueness check
//! decides), and each teamspace's events are delivered by one process at a time, the holder
//! of its delivery lease.

use std::time::Duration;

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
        let mut tx = self.health.record(self.pool.begin_write().await)?;
        on_tx!(&mut tx, c => sqlx::query("DELETE FROM schedule_ticks WHERE teamspace = $1 AND source = $2 AND tick_at < $3")
            .bind(teamspace)
            .bind(source)
            .bind(now.0 - KEEP_MS)
            .execute(&mut *c)
            .await.map(|done| done.rows_affected()))?;
        let claimed = on_tx!(&mut tx, c => sqlx::query(
            "INSERT INTO schedule_ticks (teamspace, source, tick_at, claimed_by, claimed_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(teamspace)
        .bind(source)
        .bind(tick_at.0)
        .bind(owner::current())
        .bind(now.0)
        .execute(&mut *c)
        .await.map(|done| done.rows_affected()))?;
        super::session::commit(tx, &self.health).await?;
        Ok(claimed == 1)
    }
}

impl Store {
    /// Takes or renews this process's lease on delivering `teamspace_id`'s events until
    /// `now + lease`; `false` while another live process holds it. A lease held by a process on
    /// this host that has ended is taken at once; elsewhere, once it has expired.
    pub async fn hold_delivery(&self, teamspace_id: i64, now: Millis, lease: Duration) -> Result<bool, StoreError> {
        let me = owner::current();
        let until = now.0.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let held = on_pool!(&self.pool, pool => sqlx::query(
            "INSERT INTO delivery_leases (teamspace_id, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (teamspace_id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE delivery_leases.holder = excluded.holder OR delivery_leases.expires_at < $4",
        )
        .bind(teamspace_id)
        .bind(me)
        .bind(until)
        .bind(now.0)
        .execute(pool)
        .await.map(|done| done.rows_affected()))?;
        if held == 1 {
            return Ok(true);
        }
        let holder: Option<String> = on_pool!(&self.pool, pool => sqlx::query_scalar("SELECT holder FROM delivery_leases WHERE teamspace_id = $1")
            .bind(teamspace_id)
            .fetch_optional(pool)
            .await)?;
        let Some(holder) = holder.filter(|h| owner::is_gone(h)) else { return Ok(false) };
        // Unless someone else took it over since it was read.
        let taken = on_pool!(&self.pool, pool => sqlx::query(
            "UPDATE delivery_leases SET holder = $1, expires_at = $2 WHERE teamspace_id = $3 AND holder = $4",
        )
        .bind(me)
        .bind(until)
        .bind(teamspace_id)
        .bind(&holder)
        .execute(pool)
        .await.map(|done| done.rows_affected()))?;
        if taken == 1 {
            tracing::info!(teamspace_id, previous = %holder, "took over event delivery from a process that has ended");
        }
        Ok(taken == 1)
    }

    /// Gives up this process's delivery leases (at shutdown), so another process takes over
    /// without waiting for them to expire.
    pub async fn release_deliveries(&self) -> Result<(), StoreError> {
        on_pool!(&self.pool, pool => sqlx::query("DELETE FROM delivery_leases WHERE holder = $1").bind(owner::current()).execute(pool).await.map(|done| done.rows_affected()))?;
        Ok(())
    }
}
