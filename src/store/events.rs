//! SQL for member events: the outbox the delivery worker drains, and the event feed (`events
//! list`, `/v1/.../events`). An event is its audit row; the outbox row is its delivery state.

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
    " AS source, a.run_id, a.occurred_at, o.status, o.attempts, o.last_error, o.delivered_at"
);

const EVENT_JOINS: &str = "FROM outbox o JOIN audit_events a ON a.id = o.event_id AND a.teamspace_id = o.teamspace_id \
     JOIN teamspaces t ON t.id = o.teamspace_id JOIN sources s ON s.id = a.source_id";

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

impl Store {
    /// The head of every teamspace's pending events.
    pub async fn pending_heads(&self) -> Result<Vec<PendingHead>, StoreError> {
        on_pool!(&self.pool, pool => {
        let rows = sqlx::query(
            "SELECT o.teamspace_id, o.event_id, o.next_attempt_at, o.attempts FROM outbox o \
             JOIN (SELECT teamspace_id, min(event_id) AS head FROM outbox WHERE status = 'pending' GROUP BY teamspace_id) h \
               ON h.teamspace_id = o.teamspace_id AND h.head = o.event_id",
        )
        .fetch_all(pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PendingHead {
                    teamspace_id: row.field("teamspace_id")?,
                    event_id: row.field("event_id")?,
                    next_attempt_at: Millis(row.field("next_attempt_at")?),
                    attempts: row.field("attempts")?,
                })
            })
            .collect()
        })
    }

    /// Up to `limit` pending events of a teamspace, in order.
    pub async fn pending_batch(&self, teamspace_id: i64, limit: i64) -> Result<Vec<Event>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} {EVENT_JOINS} WHERE o.teamspace_id = $1 AND o.status = 'pending' ORDER BY o.event_id LIMIT $2"
        );
        on_pool!(&self.pool, pool => {
        let rows = sqlx::query(&sql).bind(teamspace_id).bind(limit).fetch_all(pool).await?;
        rows.iter().map(|row| state_of(row).map(|s| s.event)).collect()
        })
    }

    /// Marks events `first..=last` of a teamspace delivered.
    pub async fn mark_delivered(
        &self,
        teamspace_id: i64,
        first: i64,
        last: i64,
        now: Millis,
    ) -> Result<(), StoreError> {
        on_pool!(&self.pool, pool => sqlx::query(
            "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, delivered_at = $1, last_error = NULL \
             WHERE teamspace_id = $2 AND event_id BETWEEN $3 AND $4 AND status = 'pending'",
        )
        .bind(now.0)
        .bind(teamspace_id)
        .bind(first)
        .bind(last)
        .execute(pool)
        .await.map(|done| done.rows_affected()))?;
        Ok(())
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
        on_pool!(&self.pool, pool => sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2, \
                 status = CASE WHEN $3 THEN 'dead' ELSE 'pending' END \
             WHERE teamspace_id = $4 AND event_id BETWEEN $5 AND $6 AND status = 'pending'",
        )
        .bind(error)
        .bind(retry_at.0)
        .bind(dead)
        .bind(teamspace_id)
        .bind(first)
        .bind(last)
        .execute(pool)
        .await.map(|done| done.rows_affected()))?;
        Ok(())
    }

    /// Events with their delivery state, oldest first.
    pub async fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventState>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} {EVENT_JOINS} \
             WHERE ($1 IS NULL OR o.teamspace_id = $1) AND ($2 IS NULL OR o.status = $2) AND o.event_id > $3 \
             ORDER BY o.event_id LIMIT $4"
        );
        on_pool!(&self.pool, pool => {
        let rows = sqlx::query(&sql)
            .bind(filter.teamspace_id)
            .bind(filter.status.map(<&str>::from))
            .bind(filter.after.unwrap_or(0))
            .bind(filter.limit)
            .fetch_all(pool)
            .await?;
        rows.iter().map(state_of).collect()
        })
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

    /// Pending events and the time the oldest of them happened.
    pub async fn outbox_backlog(&self) -> Result<(i64, Option<Millis>), StoreError> {
        on_pool!(&self.pool, pool => {
        let row = sqlx::query(
            "SELECT count(*), min(a.occurred_at) FROM outbox o \
             JOIN audit_events a ON a.id = o.event_id AND a.teamspace_id = o.teamspace_id WHERE o.status = 'pending'",
        )
        .fetch_one(pool)
        .await?;
        Ok((row.field_at(0)?, row.field_at::<Option<i64>>(1)?.map(Millis)))
        })
    }
}
