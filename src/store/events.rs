//! SQL for member events: their delivery, which the delivery worker drains, and the event feed
//! (`events list`, `/v1/.../events`). An event is its audit row.
//!
//! Delivery state is written when there is some: an event the worker has not tried yet is one
//! at or past its teamspace's delivery cursor (`delivery_cursors`) and has no other row; the
//! worker records each batch it sends as one outbox row per event (delivered, pending a retry,
//! or dead) and moves the cursor past it. So a run writes nothing for delivery: a
//! million-member import spent a sixth of its work on a pending outbox row per event and that
//! row's index (BENCHMARKS.md, issue 14). The cursor is enough because a teamspace's runs
//! commit one at a time (its write lock), drawing ascending event ids, and the worker sends
//! them in id order: its untried events are all those from the first untried one on, and every
//! recorded event comes before them. (It also rests on audit events never being deleted, so
//! SQLite's next id, the greatest plus one, never falls behind a cursor.)

use serde::Serialize;

use super::engine::Fields;
use super::members::oid_of;
use super::words::{self, AuditAction, DeliveryStatus};
use super::{Store, StoreError};
use crate::clock::Millis;
use crate::domain::Oid;

/// A member event, as webhooks carry it.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// The event id (its audit id): increasing per teamspace, stable across redeliveries.
    pub id: i64,
    /// `member.added`, `member.removed`, `member.updated`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Teamspace slug.
    pub teamspace: String,
    /// Entra tenant id.
    pub tenant_id: String,
    /// Entra object id.
    pub oid: Oid,
    /// Email.
    pub email: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Role.
    pub role: String,
    /// The source whose run caused it (`kind:id`).
    pub source: String,
    /// The run.
    pub run_id: i64,
    /// When it happened.
    pub occurred_at: Millis,
}

/// An event with its delivery state.
#[derive(Debug, Clone, Serialize)]
pub struct EventState {
    /// The event.
    #[serde(flatten)]
    pub event: Event,
    /// Where its delivery stands.
    pub status: DeliveryStatus,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// The last failure.
    pub last_error: Option<String>,
    /// When the receiver acknowledged it.
    pub delivered_at: Option<Millis>,
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// One teamspace's.
    pub teamspace_id: Option<i64>,
    /// In this state.
    pub status: Option<DeliveryStatus>,
    /// With ids above this.
    pub after: Option<i64>,
    /// At most this many (oldest first).
    pub limit: i64,
}

/// The first pending event of a teamspace: delivery resumes there.
#[derive(Debug, Clone, Copy)]
pub struct PendingHead {
    /// Teamspace row id.
    pub teamspace_id: i64,
    /// The event.
    pub event_id: i64,
    /// Not before this.
    pub next_attempt_at: Millis,
    /// Attempts so far.
    pub attempts: i64,
}

const EVENT_COLUMNS: &str = concat!(
    "a.id, a.action, t.name AS teamspace, t.tenant_id, a.oid, a.email, a.display_name, a.role, ",
    source_label!(),
    " AS source, a.run_id, a.occurred_at"
);

/// Recorded events: their outbox row holds their state.
const RECORDED: &str = "o.status, o.attempts, o.last_error, o.delivered_at \
     FROM outbox o JOIN audit_events a ON a.id = o.event_id AND a.teamspace_id = o.teamspace_id \
     JOIN teamspaces t ON t.id = o.teamspace_id JOIN sources s ON s.id = a.source_id";

/// Untried events of teamspace `$1` (at or past its cursor) from id `$2` on: pending, never
/// attempted. One lower bound, the greater of the two, so that the index range starts there
/// rather than at the oldest of the teamspace's delivered events.
const UNTRIED: &str = "'pending' AS status, CAST(0 AS BIGINT) AS attempts, CAST(NULL AS TEXT) AS last_error, \
     CAST(NULL AS BIGINT) AS delivered_at \
     FROM audit_events a JOIN teamspaces t ON t.id = a.teamspace_id JOIN sources s ON s.id = a.source_id \
     WHERE a.teamspace_id = $1 AND a.id >= (SELECT CASE WHEN coalesce(max(c.next_event_id), 0) > $2 \
         THEN coalesce(max(c.next_event_id), 0) ELSE $2 END FROM delivery_cursors c WHERE c.teamspace_id = $1)";

/// The delivery cursor of the teamspace whose id is `$t` (0 before its first attempt).
macro_rules! cursor_of {
    ($t:literal) => {
        concat!("coalesce((SELECT c.next_event_id FROM delivery_cursors c WHERE c.teamspace_id = ", $t, "), 0)")
    };
}

/// The untried events of teamspace `t` (a query's `teamspace t`), as the tail of a subquery.
const UNTRIED_OF_T: &str = concat!("FROM audit_events a WHERE a.teamspace_id = t.id AND a.id >= ", cursor_of!("t.id"));

/// Records the attempt at teamspace `$1`'s untried events `$2..=$3` (the rest of a batch was
/// recorded before): `$4` status, `$5` the attempt's error, `$6` next attempt, `$7` delivered at.
const RECORD_UNTRIED: &str = concat!(
    "INSERT INTO outbox (teamspace_id, event_id, status, attempts, last_error, next_attempt_at, delivered_at) \
     SELECT a.teamspace_id, a.id, $4, 1, $5, $6, $7 FROM audit_events a \
     WHERE a.teamspace_id = $1 AND a.id BETWEEN $2 AND $3 AND a.id >= ",
    cursor_of!("$1"),
    " ON CONFLICT (teamspace_id, event_id) DO NOTHING"
);

/// Moves teamspace `$1`'s cursor to `$2`, never back.
const ADVANCE_CURSOR: &str = "INSERT INTO delivery_cursors (teamspace_id, next_event_id) VALUES ($1, $2) \
     ON CONFLICT (teamspace_id) DO UPDATE SET next_event_id = excluded.next_event_id \
     WHERE delivery_cursors.next_event_id < excluded.next_event_id";

fn state_of(row: &impl Fields) -> Result<EventState, StoreError> {
    let action: AuditAction = words::parse("audit_events.action", row.field("action")?)?;
    Ok(EventState {
        event: Event {
            id: row.field("id")?,
            kind: format!("member.{action}"),
            teamspace: row.field("teamspace")?,
            tenant_id: row.field("tenant_id")?,
            oid: oid_of(row, "oid")?,
            email: row.field("email")?,
            display_name: row.field("display_name")?,
            role: row.field("role")?,
            source: row.field("source")?,
            run_id: row.field("run_id")?,
            occurred_at: Millis(row.field("occurred_at")?),
        },
        status: words::parse("outbox.status", row.field("status")?)?,
        attempts: row.field("attempts")?,
        last_error: row.field("last_error")?,
        delivered_at: row.field::<Option<i64>>("delivered_at")?.map(Millis),
    })
}

/// What a batch's attempt came to, for [`Store::record_attempt`].
struct Attempted<'a> {
    status: DeliveryStatus,
    error: Option<&'a str>,
    next_attempt_at: Millis,
    delivered_at: Option<Millis>,
}

impl Store {
    /// The head of every teamspace's pending events: its first recorded pending event (a
    /// retry), or else its first untried one.
    pub async fn pending_heads(&self) -> Result<Vec<PendingHead>, StoreError> {
        let (recorded, untried) = on_pool!(&self.pool, pool => {
            let recorded = sqlx::query(
                "SELECT o.teamspace_id, o.event_id, o.next_attempt_at, o.attempts FROM outbox o \
                 JOIN (SELECT teamspace_id, min(event_id) AS head FROM outbox WHERE status = 'pending' GROUP BY teamspace_id) h \
                   ON h.teamspace_id = o.teamspace_id AND h.head = o.event_id",
            )
            .fetch_all(pool)
            .await?;
            let untried = sqlx::query(&format!(
                "SELECT t.id AS teamspace_id, (SELECT min(a.id) {UNTRIED_OF_T}) AS event_id FROM teamspaces t ORDER BY t.id"
            ))
            .fetch_all(pool)
            .await?;
            (
                recorded.iter().map(|row| Ok(PendingHead {
                    teamspace_id: row.field("teamspace_id")?,
                    event_id: row.field("event_id")?,
                    next_attempt_at: Millis(row.field("next_attempt_at")?),
                    attempts: row.field("attempts")?,
                })).collect::<Result<Vec<_>, StoreError>>()?,
                untried.iter().map(|row| Ok((row.field::<i64>("teamspace_id")?, row.field::<Option<i64>>("event_id")?)))
                    .collect::<Result<Vec<_>, StoreError>>()?,
            )
        });
        let mut heads = recorded;
        for (teamspace_id, event_id) in untried {
            let Some(event_id) = event_id else { continue };
            if heads.iter().all(|head| head.teamspace_id != teamspace_id) {
                heads.push(PendingHead { teamspace_id, event_id, next_attempt_at: Millis(0), attempts: 0 });
            }
        }
        Ok(heads)
    }

    /// Up to `limit` pending events of a teamspace, in order: its recorded pending events
    /// (retries), then its untried ones.
    pub async fn pending_batch(&self, teamspace_id: i64, limit: i64) -> Result<Vec<Event>, StoreError> {
        // Its own query, not `recorded_events`: a literal status lets both engines read the
        // pending rows off their partial index instead of the whole delivered history.
        let sql = format!(
            "SELECT {EVENT_COLUMNS}, {RECORDED} WHERE o.teamspace_id = $1 AND o.status = 'pending' \
             ORDER BY o.event_id LIMIT $2"
        );
        let mut batch: Vec<EventState> = on_pool!(&self.pool, pool => {
            let rows = sqlx::query(&sql).bind(teamspace_id).bind(limit).fetch_all(pool).await?;
            rows.iter().map(state_of).collect::<Result<_, StoreError>>()?
        });
        let room = limit - batch.len() as i64;
        if room > 0 {
            batch.extend(self.untried_events(teamspace_id, 0, room).await?);
        }
        Ok(batch.into_iter().map(|state| state.event).collect())
    }

    /// Marks events `first..=last` of a teamspace delivered.
    pub async fn mark_delivered(
        &self,
        teamspace_id: i64,
        first: i64,
        last: i64,
        now: Millis,
    ) -> Result<(), StoreError> {
        let attempted = Attempted {
            status: DeliveryStatus::Delivered,
            error: None,
            next_attempt_at: Millis(0),
            delivered_at: Some(now),
        };
        self.record_attempt(teamspace_id, (first, last), attempted).await
    }

    /// Records a failed attempt for events `first..=last`: retried at `retry_at`, or parked
    /// as `dead`.
    pub async fn mark_failed(
        &self,
        teamspace_id: i64,
        (first, last): (i64, i64),
        error: &str,
        retry_at: Millis,
        dead: bool,
    ) -> Result<(), StoreError> {
        let status = if dead { DeliveryStatus::Dead } else { DeliveryStatus::Pending };
        let attempted = Attempted { status, error: Some(error), next_attempt_at: retry_at, delivered_at: None };
        self.record_attempt(teamspace_id, (first, last), attempted).await
    }

    /// One attempt at the pending events `first..=last` of a teamspace, in one transaction:
    /// the recorded ones are updated, the untried ones recorded, and the cursor moved past
    /// `last`. Only the teamspace's delivery lease holder sends its batches; should two ever
    /// record the same batch, the second finds its rows there and adds none.
    async fn record_attempt(
        &self,
        teamspace_id: i64,
        (first, last): (i64, i64),
        attempted: Attempted<'_>,
    ) -> Result<(), StoreError> {
        let Attempted { status, error, next_attempt_at, delivered_at } = attempted;
        let status = <&str>::from(status);
        let mut tx = self.pool.begin_write().await?;
        on_tx!(&mut tx, c => {
            sqlx::query(
                "UPDATE outbox SET status = $1, attempts = attempts + 1, last_error = $2, next_attempt_at = $3, \
                     delivered_at = $4 \
                 WHERE teamspace_id = $5 AND event_id BETWEEN $6 AND $7 AND status = 'pending'",
            )
            .bind(status)
            .bind(error)
            .bind(next_attempt_at.0)
            .bind(delivered_at.map(|at| at.0))
            .bind(teamspace_id)
            .bind(first)
            .bind(last)
            .execute(&mut *c)
            .await?;
            sqlx::query(RECORD_UNTRIED)
                .bind(teamspace_id)
                .bind(first)
                .bind(last)
                .bind(status)
                .bind(error)
                .bind(next_attempt_at.0)
                .bind(delivered_at.map(|at| at.0))
                .execute(&mut *c)
                .await?;
            sqlx::query(ADVANCE_CURSOR).bind(teamspace_id).bind(last.saturating_add(1)).execute(&mut *c).await?;
        });
        tx.commit().await
    }

    /// Events with their delivery state, oldest first.
    pub async fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventState>, StoreError> {
        let after = filter.after.unwrap_or(0);
        let mut events = self.recorded_events(filter.teamspace_id, filter.status, after, filter.limit).await?;
        if matches!(filter.status, None | Some(DeliveryStatus::Pending)) {
            let teamspaces = match filter.teamspace_id {
                Some(id) => vec![id],
                None => self.teamspace_ids().await?,
            };
            for teamspace_id in teamspaces {
                events.extend(self.untried_events(teamspace_id, after, filter.limit).await?);
            }
            events.sort_by_key(|state| state.event.id);
            events.truncate(usize::try_from(filter.limit).unwrap_or(0));
        }
        Ok(events)
    }

    /// Recorded events (those the worker has tried) with ids above `after`, oldest first.
    async fn recorded_events(
        &self,
        teamspace_id: Option<i64>,
        status: Option<DeliveryStatus>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<EventState>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS}, {RECORDED} \
             WHERE ($1 IS NULL OR o.teamspace_id = $1) AND ($2 IS NULL OR o.status = $2) AND o.event_id > $3 \
             ORDER BY o.event_id LIMIT $4"
        );
        on_pool!(&self.pool, pool => {
        let rows = sqlx::query(&sql)
            .bind(teamspace_id)
            .bind(status.map(<&str>::from))
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?;
        rows.iter().map(state_of).collect()
        })
    }

    /// A teamspace's untried events with ids above `after`, oldest first.
    async fn untried_events(&self, teamspace_id: i64, after: i64, limit: i64) -> Result<Vec<EventState>, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS}, {UNTRIED} ORDER BY a.id LIMIT $3");
        on_pool!(&self.pool, pool => {
        let rows = sqlx::query(&sql).bind(teamspace_id).bind(after.saturating_add(1)).bind(limit).fetch_all(pool).await?;
        rows.iter().map(state_of).collect()
        })
    }

    async fn teamspace_ids(&self) -> Result<Vec<i64>, StoreError> {
        Ok(
            on_pool!(&self.pool, pool => sqlx::query_scalar("SELECT id FROM teamspaces ORDER BY id").fetch_all(pool).await)?,
        )
    }

    /// Puts a dead event back in line.
    pub async fn retry_event(&self, event_id: i64) -> Result<(), StoreError> {
        let done = on_pool!(&self.pool, pool => sqlx::query(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = 0, last_error = NULL \
             WHERE event_id = $1 AND status = 'dead'",
        )
        .bind(event_id)
        .execute(pool)
        .await.map(|done| done.rows_affected()))?;
        if done == 0 {
            return Err(StoreError::NotFound(format!("dead event {event_id}")));
        }
        Ok(())
    }

    /// Pending events (recorded and untried) and the time the oldest of them happened. A
    /// teamspace's untried events are counted on its index, and the first of them is its
    /// oldest: its runs commit in turn.
    pub async fn outbox_backlog(&self) -> Result<(i64, Option<Millis>), StoreError> {
        let sql = format!(
            "SELECT (SELECT count(*) {UNTRIED_OF_T}) AS untried, \
                 (SELECT a.occurred_at {UNTRIED_OF_T} ORDER BY a.id LIMIT 1) AS oldest \
             FROM teamspaces t"
        );
        on_pool!(&self.pool, pool => {
        let recorded = sqlx::query(
            "SELECT count(*), min(a.occurred_at) FROM outbox o \
             JOIN audit_events a ON a.id = o.event_id AND a.teamspace_id = o.teamspace_id WHERE o.status = 'pending'",
        )
        .fetch_one(pool)
        .await?;
        let mut pending: i64 = recorded.field_at(0)?;
        let mut oldest: Option<i64> = recorded.field_at(1)?;
        for row in sqlx::query(&sql).fetch_all(pool).await? {
            pending += row.field::<i64>("untried")?;
            if let Some(at) = row.field::<Option<i64>>("oldest")? {
                oldest = Some(oldest.map_or(at, |o| o.min(at)));
            }
        }
        Ok((pending, oldest.map(Millis)))
        })
    }
}
