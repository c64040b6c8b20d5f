//! `/metrics` in Prometheus text. Counters of what this process does (SCIM requests and their
//! latency, webhook deliveries) live in a prometheus-client registry; totals that other
//! processes also change (runs, members added and removed, the outbox backlog) are read from
//! the database at scrape time, so `c7sync import` runs count too.

use std::fmt::Write as _;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::clock::Millis;
use crate::store::{Store, StoreError};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenCheckLabels {
    teamspace: String,
    outcome: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyFetchLabels {
    tenant: String,
    result: &'static str,
}

/// The method as a label: the known ones, else `other`, so a client cannot mint label values.
fn method_label(method: &str) -> String {
    const KNOWN: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
    KNOWN.iter().find(|m| **m == method).map_or("other", |m| m).to_owned()
}

fn latency_histogram() -> Histogram {
    // 0.25 ms to ~4 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
}

/// One teamspace's token-check counters (see [`Metrics::token_counters`]).
#[derive(Debug, Clone)]
pub struct TokenCounters {
    accepted: Counter,
    unavailable: Counter,
    refused: [Counter; crate::token::Reason::ALL.len()],
    latency: Histogram,
}

impl TokenCounters {
    /// One check: accepted (`Ok`), refused for a reason, or undecided (`Err(None)`).
    pub fn observe(&self, outcome: Result<(), Option<crate::token::Reason>>, seconds: f64) {
        match outcome {
            Ok(()) => self.accepted.inc(),
            Err(None) => self.unavailable.inc(),
            Err(Some(reason)) => self.refused[reason as usize].inc(),
        };
        self.latency.observe(seconds);
    }
}

/// The process's metrics.
pub struct Metrics {
    registry: Registry,
    scim_requests: Family<RequestLabels, Counter>,
    scim_latency: Family<MethodLabels, Histogram, fn() -> Histogram>,
    delivery_attempts: Counter,
    delivery_failures: Counter,
    events_delivered: Counter,
    token_checks: Family<TokenCheckLabels, Counter>,
    token_latency: Histogram,
    key_fetches: Family<KeyFetchLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A fresh registry.
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("c7sync");
        let scim_requests = Family::<RequestLabels, Counter>::default();
        registry.register("scim_requests", "SCIM requests by method and status", scim_requests.clone());
        let scim_latency =
            Family::<MethodLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register("scim_request_duration_seconds", "SCIM request latency", scim_latency.clone());
        let delivery_attempts = Counter::default();
        registry.register("delivery_attempts", "Webhook POSTs attempted", delivery_attempts.clone());
        let delivery_failures = Counter::default();
        registry.register("delivery_failures", "Webhook POSTs that failed", delivery_failures.clone());
        let events_delivered = Counter::default();
        registry.register("events_delivered", "Member events acknowledged by the webhook", events_delivered.clone());
        let token_checks = Family::<TokenCheckLabels, Counter>::default();
        registry.register(
            "token_checks",
            "Token checks (authorize, introspect) by teamspace, outcome and reason",
            token_checks.clone(),
        );
        let token_latency = latency_histogram();
        registry.register("token_check_duration_seconds", "Token check latency", token_latency.clone());
        let key_fetches = Family::<KeyFetchLabels, Counter>::default();
        registry.register("jwks_fetches", "Fetches of a tenant's signing keys, by result", key_fetches.clone());
        Arc::new(Metrics {
            registry,
            scim_requests,
            scim_latency,
            delivery_attempts,
            delivery_failures,
            events_delivered,
            token_checks,
            token_latency,
            key_fetches,
        })
    }

    /// One SCIM request.
    pub fn observe_scim(&self, method: &str, status: u16, seconds: f64) {
        let method = method_label(method);
        self.scim_requests.get_or_create(&RequestLabels { method: method.clone(), status }).inc();
        self.scim_latency.get_or_create(&MethodLabels { method }).observe(seconds);
    }

    /// The token-check counters of one configured teamspace, every outcome and reason created
    /// now (they show as 0 until used, and counting allocates nothing).
    pub fn token_counters(&self, teamspace: &str) -> TokenCounters {
        let counter = |outcome, reason| {
            self.token_checks
                .get_or_create(&TokenCheckLabels { teamspace: teamspace.to_owned(), outcome, reason })
                .clone()
        };
        TokenCounters {
            accepted: counter("accepted", ""),
            unavailable: counter("unavailable", ""),
            refused: crate::token::Reason::ALL.map(|r| counter("refused", r.code())),
            latency: self.token_latency.clone(),
        }
    }

    /// One fetch of a configured tenant's signing keys.
    pub fn observe_key_fetch(&self, tenant: &str, ok: bool) {
        let labels = KeyFetchLabels { tenant: tenant.to_owned(), result: if ok { "ok" } else { "error" } };
        self.key_fetches.get_or_create(&labels).inc();
    }

    /// One webhook attempt carrying `events` events.
    pub fn observe_delivery(&self, events: u64, ok: bool) {
        self.delivery_attempts.inc();
        if ok {
            self.events_delivered.inc_by(events);
        } else {
            self.delivery_failures.inc();
        }
    }

    /// The exposition text: this process's counters, then the database's totals.
    pub async fn render(&self, store: &Store) -> Result<String, StoreError> {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(&mut text, &self.registry);
        let runs = store.run_totals().await?;
        let _ = writeln!(text, "# HELP c7sync_runs Runs recorded, by teamspace, source and outcome.");
        let _ = writeln!(text, "# TYPE c7sync_runs counter");
        for r in &runs {
            let _ = writeln!(
                text,
                "c7sync_runs_total{{teamspace=\"{}\",source=\"{}\",outcome=\"{}\"}} {}",
                escape(&r.teamspace),
                escape(&r.source),
                r.outcome,
                r.runs
            );
        }
        for (name, help, pick) in [
            ("members_added", "Members added by applied runs.", 0),
            ("members_removed", "Members removed by applied runs.", 1),
        ] {
            let _ = writeln!(text, "# HELP c7sync_{name} {help}");
            let _ = writeln!(text, "# TYPE c7sync_{name} counter");
            for r in runs.iter().filter(|r| r.outcome.is(crate::store::Outcome::Applied)) {
                let value = if pick == 0 { r.added } else { r.removed };
                let _ = writeln!(
                    text,
                    "c7sync_{name}_total{{teamspace=\"{}\",source=\"{}\"}} {value}",
                    escape(&r.teamspace),
                    escape(&r.source)
                );
            }
        }
        let (pending, oldest) = store.outbox_backlog().await?;
        let age = oldest.map(|o| Millis::now().since(o) as f64 / 1000.0).unwrap_or(0.0);
        let _ = writeln!(text, "# HELP c7sync_outbox_pending Member events not yet delivered.");
        let _ = writeln!(text, "# TYPE c7sync_outbox_pending gauge\nc7sync_outbox_pending {pending}");
        let _ = writeln!(text, "# HELP c7sync_outbox_oldest_pending_age_seconds Age of the oldest undelivered event.");
        let _ = writeln!(text, "# TYPE c7sync_outbox_oldest_pending_age_seconds gauge");
        let _ = writeln!(text, "c7sync_outbox_oldest_pending_age_seconds {age}");
        text.push_str("# EOF\n");
        Ok(text)
    }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
