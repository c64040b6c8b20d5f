//! Signing keys per tenant, kept as Microsoft's key-rollover guidance asks: cached, refreshed
//! in the background well inside 24 h, refetched once when a token names a key we do not have
//! (single-flight, at most once per 5 minutes per tenant, so a flood of forged `kid`s cannot
//! make us hammer Entra), and kept when a fetch fails.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::authority::{Authority, KeySet};
use super::signature::VerifyingKey;
use crate::clock::{Clock, Millis};
use crate::metrics::Metrics;

/// How often keys are refetched, when to retry a failed fetch, how often an unknown `kid` may
/// cause a refetch.
#[derive(Debug, Clone)]
pub struct KeySettings {
    /// Background refresh of keys that are this old.
    pub refresh_every: Duration,
    /// A failed fetch is tried again after this long (and a never-fetched tenant answers
    /// "unavailable, retry after this long" in between).
    pub retry_failed_every: Duration,
    /// An unknown `kid` causes at most one refetch per tenant in this window.
    pub unknown_key_refetch_every: Duration,
}

impl Default for KeySettings {
    fn default() -> Self {
        KeySettings {
            refresh_every: Duration::from_secs(3600),
            retry_failed_every: Duration::from_secs(10),
            unknown_key_refetch_every: Duration::from_secs(300),
        }
    }
}

/// The answer for one `kid`.
#[derive(Clone)]
pub enum KeyLookup {
    /// The key.
    Found(Arc<VerifyingKey>),
    /// The tenant's current keys (refetched if allowed) do not include it.
    Unknown {
        /// How many keys the tenant publishes.
        known: usize,
    },
    /// No keys were ever fetched for the tenant, and the last try failed.
    Unavailable {
        /// Why.
        error: String,
        /// When to ask again.
        retry_after: Duration,
    },
}

/// Keys of every tenant the configured teamspaces trust.
pub struct KeyCache {
    http: reqwest::Client,
    settings: KeySettings,
    clock: Clock,
    metrics: Arc<Metrics>,
    tenants: RwLock<HashMap<Authority, Arc<TenantKeys>>>,
}

struct TenantKeys {
    authority: Authority,
    current: RwLock<Option<Arc<Fetched>>>,
    /// Bumped by every successful fetch, so waiters can tell one happened while they waited.
    generation: AtomicU64,
    fetching: tokio::sync::Mutex<FetchState>,
}

struct Fetched {
    keys: KeySet,
    at: Millis,
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<Millis>,
    last_forced: Option<Millis>,
    last_error: Option<String>,
}

impl TenantKeys {
    fn current(&self) -> Option<Arc<Fetched>> {
        self.current.read().ok()?.clone()
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

impl KeyCache {
    /// A cache for `authorities`, none fetched yet; `http` should time out (see
    /// [`super::authority::FETCH_TIMEOUT`]).
    pub fn new(
        http: reqwest::Client,
        authorities: impl IntoIterator<Item = Authority>,
        settings: KeySettings,
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> KeyCache {
        let tenants = authorities.into_iter().map(|a| (a.clone(), Arc::new(TenantKeys::new(a)))).collect();
        KeyCache { http, settings, clock, metrics, tenants: RwLock::new(tenants) }
    }

    fn tenant(&self, authority: &Authority) -> Arc<TenantKeys> {
        if let Some(found) = self.tenants.read().ok().and_then(|t| t.get(authority).cloned()) {
            return found;
        }
        let mut tenants = match self.tenants.write() {
            Ok(tenants) => tenants,
            Err(poisoned) => poisoned.into_inner(),
        };
        tenants.entry(authority.clone()).or_insert_with(|| Arc::new(TenantKeys::new(authority.clone()))).clone()
    }

    /// The key `kid` of `authority`'s tenant, fetching or refetching as the rules allow.
    pub async fn key(&self, authority: &Authority, kid: &str) -> KeyLookup {
        let tenant = self.tenant(authority);
        if let Some(key) = tenant.current().and_then(|f| f.keys.0.get(kid).cloned()) {
            return KeyLookup::Found(key);
        }
        let seen = tenant.generation();
        let mut state = tenant.fetching.lock().await;
        // A fetch that finished while we waited for the lock is the one refetch; use its keys.
        if tenant.generation() == seen {
            let now = self.clock.now();
            let due = match tenant.current() {
                None => elapsed(state.last_attempt, now, self.settings.retry_failed_every),
                Some(_) => elapsed(state.last_forced, now, self.settings.unknown_key_refetch_every),
            };
            if due {
                if tenant.current().is_some() {
                    state.last_forced = Some(now);
                    tracing::debug!(tenant = %authority.tenant(), "a token names an unknown signing key; refetching the keys");
                }
                self.fetch(&tenant, &mut state, now).await;
            }
        }
        match tenant.current() {
            Some(fetched) => match fetched.keys.0.get(kid) {
                Some(key) => KeyLookup::Found(key.clone()),
                None => KeyLookup::Unknown { known: fetched.keys.0.len() },
            },
            None => KeyLookup::Unavailable {
                error: state.last_error.clone().unwrap_or_else(|| "the signing keys were not fetched yet".into()),
                retry_after: self.settings.retry_failed_every,
            },
        }
    }

    /// Fetches the keys of every tenant the check has been asked about whose keys are missing
    /// or older than the refresh interval (failed tenants wait for the retry interval). A
    /// tenant never asked about is never fetched: a teamspace that does not use the token
    /// check makes c7sync contact nobody. The daemon calls this on a timer.
    pub async fn refresh_due(&self) {
        let tenants: Vec<Arc<TenantKeys>> =
            self.tenants.read().map(|t| t.values().cloned().collect()).unwrap_or_default();
        for tenant in tenants {
            let mut state = tenant.fetching.lock().await;
            if state.last_attempt.is_none() {
                continue;
            }
            let now = self.clock.now();
            let stale = tenant.current().is_none_or(|f| now.since(f.at) >= millis(self.settings.refresh_every));
            if stale && elapsed(state.last_attempt, now, self.settings.retry_failed_every) {
                self.fetch(&tenant, &mut state, now).await;
            }
        }
    }

    /// Runs [`KeyCache::refresh_due`] now and then every retry interval, forever.
    pub async fn keep_fresh(self: Arc<Self>) {
        loop {
            self.refresh_due().await;
            tokio::time::sleep(self.settings.retry_failed_every).await;
        }
    }

    async fn fetch(&self, tenant: &TenantKeys, state: &mut FetchState, now: Millis) {
        state.last_attempt = Some(now);
        let label = tenant.authority.tenant().to_string();
        match tenant.authority.discover(&self.http).await {
            Ok(discovery) => {
                tracing::info!(tenant = %label, keys = ?discovery.key_ids, "signing keys fetched");
                if let Ok(mut current) = tenant.current.write() {
                    *current = Some(Arc::new(Fetched { keys: discovery.keys, at: now }));
                }
                tenant.generation.fetch_add(1, Ordering::AcqRel);
                state.last_error = None;
                self.metrics.observe_key_fetch(&label, true);
            }
            Err(error) => {
                let kept = tenant.current().map(|f| f.keys.0.len()).unwrap_or(0);
                tracing::warn!(tenant = %label, %error, kept_keys = kept, "cannot fetch signing keys; keeping the last good ones");
                state.last_error = Some(error.to_string());
                self.metrics.observe_key_fetch(&label, false);
            }
        }
    }
}

impl TenantKeys {
    fn new(authority: Authority) -> TenantKeys {
        TenantKeys {
            authority,
            current: RwLock::new(None),
            generation: AtomicU64::new(0),
            fetching: tokio::sync::Mutex::new(FetchState::default()),
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn elapsed(since: Option<Millis>, now: Millis, interval: Duration) -> bool {
    since.is_none_or(|t| now.since(t) >= millis(interval))
}
