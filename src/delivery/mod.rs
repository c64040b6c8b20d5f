//! Webhook delivery: a worker in `c7sync serve` sends member events (audit rows) to
//! `[delivery] webhook_url`, recording each batch's attempt in the outbox (`store/events.rs`).
//!
//! At least once, in order per teamspace: a batch is marked delivered only after a 2xx, and
//! while a teamspace's head batch is failing nothing behind it is sent. Failures back off
//! exponentially with jitter (capped); `410 Gone`, or a 4xx that repeats, parks the batch as
//! `dead` (visible in `c7sync events list --status dead`, back in line with `events retry`),
//! and the events behind it move on. State is in the database, so a restart resumes. Several
//! processes on one database deliver each teamspace one at a time: the holder of its lease.

pub mod signature;

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;

use crate::clock::Millis;
use crate::metrics::Metrics;
use crate::store::{PendingHead, Store};

/// How the worker behaves.
#[derive(Clone)]
pub struct DeliveryOptions {
    /// Where events are POSTed.
    pub url: url::Url,
    /// The HMAC key.
    pub secret: Arc<[u8]>,
    /// Events per request, at most.
    pub batch: i64,
    /// One request must finish within this.
    pub timeout: Duration,
    /// A client error (4xx other than 408/429) this many times parks the batch as dead.
    pub max_client_errors: i64,
    /// The first retry delay; doubles per attempt.
    pub base_backoff: Duration,
    /// The longest retry delay.
    pub max_backoff: Duration,
    /// How often an idle worker looks for new events.
    pub poll: Duration,
    /// How long a teamspace's delivery stays with this process after its last batch: other
    /// processes sharing the database leave it alone meanwhile. Longer than `timeout`, so a
    /// batch in flight is answered (or abandoned) before another process may send it again.
    pub lease: Duration,
}

impl std::fmt::Debug for DeliveryOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryOptions").field("url", &self.url.as_str()).field("batch", &self.batch).finish()
    }
}

impl DeliveryOptions {
    /// Defaults for `url` signed with `secret`.
    pub fn new(url: url::Url, secret: &[u8]) -> Self {
        DeliveryOptions {
            url,
            secret: secret.into(),
            batch: 500,
            timeout: Duration::from_secs(10),
            max_client_errors: 5,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            poll: Duration::from_millis(200),
            lease: Duration::from_secs(30),
        }
    }
}

enum Attempt {
    Delivered,
    Retry(String),
    Dead(String),
}

/// Runs until `shutdown`; a batch in flight is finished first.
pub async fn run(store: Store, options: DeliveryOptions, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    let http = match crate::outbound::client(options.timeout, options.url.scheme() == "https") {
        Ok(http) => http,
        Err(error) => {
            tracing::error!(%error, "cannot build the webhook HTTP client; delivery is off");
            return;
        }
    };
    tracing::info!(url = %options.url, "webhook delivery started");
    while !shutdown.is_cancelled() {
        let busy = match store.pending_heads().await {
            Ok(heads) => {
                let now = Millis::now();
                let mut sent = false;
                for head in heads.into_iter().filter(|h| h.next_attempt_at <= now) {
                    match store.hold_delivery(head.teamspace_id, now, options.lease).await {
                        Ok(true) => {}
                        Ok(false) => continue, // another process delivers this teamspace
                        Err(error) => {
                            tracing::warn!(%error, "cannot take the delivery lease; retrying");
                            continue;
                        }
                    }
                    sent = true;
                    deliver(&store, &http, &options, &metrics, head).await;
                    if shutdown.is_cancelled() {
                        break;
                    }
                }
                sent
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the pending events; retrying");
                false
            }
        };
        if !busy {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tokio::time::sleep(options.poll) => {}
            }
        }
    }
    if let Err(error) = store.release_deliveries().await {
        tracing::warn!(%error, "could not give up the delivery leases; other processes take over when they expire");
    }
}

async fn deliver(
    store: &Store,
    http: &reqwest::Client,
    options: &DeliveryOptions,
    metrics: &Metrics,
    head: PendingHead,
) {
    let events = match store.pending_batch(head.teamspace_id, options.batch).await {
        Ok(events) if !events.is_empty() => events,
        Ok(_) => return,
        Err(error) => {
            tracing::warn!(%error, "cannot read pending events");
            return;
        }
    };
    let (first, last) = (events[0].id, events[events.len() - 1].id);
    let body = serde_json::json!({ "events": events }).to_string();
    let timestamp = chrono::Utc::now().timestamp();
    let signature = signature::sign(&options.secret, timestamp, body.as_bytes());
    let attempt = head.attempts + 1;
    let response = http
        .post(options.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(signature::HEADER, signature)
        .body(body)
        .send()
        .await;
    let outcome = match response {
        Ok(response) if response.status().is_success() => Attempt::Delivered,
        Ok(response) => {
            let status = response.status();
            let detail = format!("HTTP {status}");
            let client_error = status.is_client_error()
                && status != StatusCode::REQUEST_TIMEOUT
                && status != StatusCode::TOO_MANY_REQUESTS;
            if status == StatusCode::GONE || (client_error && attempt >= options.max_client_errors) {
                Attempt::Dead(detail)
            } else {
                Attempt::Retry(detail)
            }
        }
        Err(error) => Attempt::Retry(crate::outbound::describe(&error)),
    };
    let count = events.len() as u64;
    let now = Millis::now();
    let result = match &outcome {
        Attempt::Delivered => {
            metrics.observe_delivery(count, true);
            tracing::debug!(teamspace_id = head.teamspace_id, first, last, "events delivered");
            store.mark_delivered(head.teamspace_id, first, last, now).await
        }
        Attempt::Retry(error) => {
            metrics.observe_delivery(count, false);
            let wait = backoff(options, attempt);
            tracing::warn!(teamspace_id = head.teamspace_id, first, last, attempt, %error, retry_in_ms = wait.as_millis() as u64, "webhook delivery failed; will retry");
            store
                .mark_failed(head.teamspace_id, (first, last), error, Millis(now.0 + wait.as_millis() as i64), false)
                .await
        }
        Attempt::Dead(error) => {
            metrics.observe_delivery(count, false);
            tracing::error!(teamspace_id = head.teamspace_id, first, last, attempt, %error, "webhook refused the events; parked as dead (c7sync events list --status dead)");
            store.mark_failed(head.teamspace_id, (first, last), error, now, true).await
        }
    };
    if let Err(error) = result {
        tracing::warn!(%error, "cannot record a delivery attempt");
    }
}

fn backoff(options: &DeliveryOptions, attempt: i64) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1)).unwrap_or(u32::MAX).min(20);
    let full = options.base_backoff.saturating_mul(1u32 << exponent).min(options.max_backoff);
    // Full jitter between half and all of it.
    full.mul_f64(0.5 + 0.5 * crate::clock::jitter())
}
