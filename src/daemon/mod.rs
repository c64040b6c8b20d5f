//! `c7sync serve`: the scheduler and the HTTP server in one process, until SIGTERM or SIGINT.
//!
//! Shutdown order: stop scheduling, give runs already started a bounded time to finish (a
//! run's writes are one transaction, so one cut short leaves nothing behind), then stop the
//! HTTP server.

mod scheduler;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::ApiState;
use crate::clock::Clock;
use crate::config::{Config, SourceSettings};
use crate::delivery::DeliveryOptions;
use crate::http::{router, AppState};
use crate::lookup::MemberLookup;
use crate::metrics::Metrics;
use crate::reconcile::Reconciler;
use crate::scim::provision::Policy;
use crate::scim::ScimState;
use crate::token::{KeySettings, TokenService};

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Where the HTTP server listens (port 0: any free port; the log line says which).
    pub listen: SocketAddr,
    /// How long runs in progress may take to finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The listen address is taken or not ours.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// `[delivery]` names a signing-secret variable that is not set.
    #[error("[delivery] signing_secret_env: environment variable {0} is not set or empty")]
    MissingSecret(String),
    /// The HTTP client for key fetches could not be built.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
    /// The database does not take writes (read-only file or folder, full disk).
    #[error("database {database} does not take writes: {reason}")]
    NotWritable {
        /// The database, without its password.
        database: String,
        /// What SQLite said.
        reason: String,
    },
    /// The store could not be read at start-up.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Serves until SIGTERM or SIGINT, then shuts down gracefully.
pub async fn serve(config: &Config, reconciler: Reconciler, options: DaemonOptions) -> Result<(), DaemonError> {
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| DaemonError::Listen { address: options.listen, source })?;
    let address = listener.local_addr().map_err(|source| DaemonError::Listen { address: options.listen, source })?;
    let signals = Signals::install()?;
    tracing::info!(database = %without_password(&config.database), config = %config.path.display(), "database opened");
    // A database this process cannot write is refused now, not answered with 500 per write.
    match reconciler.store().check_writable(crate::clock::Millis::now()).await {
        Err(crate::store::StoreError::Unavailable(reason)) => {
            return Err(DaemonError::NotWritable { database: without_password(&config.database), reason })
        }
        Err(crate::store::StoreError::Busy(_)) => {} // another process is writing: writable
        other => other?,
    }
    // Runs a previous instance (or a killed CLI) left running are failed before scheduling.
    reconciler.store().fail_abandoned_runs(crate::clock::Millis::now()).await?;
    let delivery = match &config.delivery {
        None => None,
        Some(delivery) => {
            let secret = crate::secret::from_env(&delivery.signing_secret_env)
                .ok_or_else(|| DaemonError::MissingSecret(delivery.signing_secret_env.clone()))?;
            Some(DeliveryOptions::new(delivery.webhook_url.clone(), secret.as_bytes()))
        }
    };
    let metrics = Metrics::new();
    let shutdown = CancellationToken::new();
    let http_shutdown = CancellationToken::new();
    let api = api_state(config, &reconciler, &metrics, &http_shutdown).await?;
    let policies = config
        .teamspaces
        .iter()
        .filter_map(|t| {
            t.sources.iter().find_map(|s| match &s.settings {
                SourceSettings::Scim(settings) => Some((t.name.to_string(), Policy::from(settings))),
                _ => None,
            })
        })
        .collect();
    let scim = ScimState::new(reconciler.clone(), policies).with_public_url(config.server.public_url.as_ref());
    let metrics_token = crate::secret::from_env("C7SYNC_METRICS_TOKEN");
    if metrics_token.is_none() {
        tracing::info!("C7SYNC_METRICS_TOKEN is not set: /metrics is open to whoever reaches the port");
    }
    let state = AppState::new(reconciler.store().clone(), metrics.clone()).with_metrics_token(metrics_token.as_deref());
    let app = router(state, scim, Some(api));
    let http =
        tokio::spawn(crate::http::listener::serve(listener, app, options.max_connections, http_shutdown.clone()));
    tracing::info!(%address, "listening");

    let runs = TaskTracker::new();
    if let Some(options) = delivery {
        // Tracked with the runs: a batch in flight at shutdown is finished and recorded.
        runs.spawn(crate::delivery::run(reconciler.store().clone(), options, metrics, shutdown.clone()));
    }
    let scheduled = scheduler::start(config, reconciler, shutdown.clone(), runs.clone());
    tracing::info!(scheduled, teamspaces = config.teamspaces.len(), "c7sync serve started");

    let signal = signals.wait().await;
    tracing::info!(signal, "shutting down: no new runs; waiting for runs in progress");
    shutdown.cancel();
    runs.close();
    if tokio::time::timeout(options.shutdown_grace, runs.wait()).await.is_err() {
        tracing::warn!(
            grace_s = options.shutdown_grace.as_secs(),
            "runs still in progress after the grace period; stopping them (their transactions roll back)"
        );
    }
    http_shutdown.cancel();
    // The listener drains open requests for a bounded time itself.
    let _ = http.await;
    tracing::info!("stopped");
    Ok(())
}

/// The `/v1` state: the member look-up and the token check (kept fresh by tasks spawned here
/// until `stop`, so that none reads a store already closed at shutdown), and the admin token
/// from `$C7SYNC_ADMIN_TOKEN`.
async fn api_state(
    config: &Config,
    reconciler: &Reconciler,
    metrics: &Arc<Metrics>,
    stop: &CancellationToken,
) -> Result<ApiState, DaemonError> {
    let store = reconciler.store();
    let mut teamspaces = HashMap::new();
    for teamspace in &config.teamspaces {
        teamspaces.insert(teamspace.name.to_string(), store.teamspace(teamspace.name.as_str()).await?.id);
    }
    let members = MemberLookup::new(store.clone());
    tokio::spawn(stop.clone().run_until_cancelled_owned(members.clone().keep_fresh()));
    let tokens = TokenService::for_config(
        config,
        &teamspaces,
        members.clone(),
        KeySettings::default(),
        Clock::System,
        metrics.clone(),
    )
    .map_err(|e| DaemonError::HttpClient(e.to_string()))?;
    let tokens = Arc::new(tokens);
    tokio::spawn(stop.clone().run_until_cancelled_owned(tokens.keys().clone().keep_fresh()));
    let admin_token = match crate::secret::from_env("C7SYNC_ADMIN_TOKEN") {
        None => {
            tracing::info!("C7SYNC_ADMIN_TOKEN is not set: the /v1 admin API is off (token checks at /v1/teamspaces/{{t}}/authorize are on)");
            None
        }
        Some(token) => Some(crate::secret::SecretHash::of(&token)),
    };
    Ok(ApiState::new(reconciler.clone(), Arc::new(config.clone()), admin_token, teamspaces, members, tokens))
}

/// A database URL fit for the log: a password in it is replaced by `***`.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// SIGTERM (systemd, Kubernetes) and SIGINT (Ctrl-C).
struct Signals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, DaemonError> {
        Ok(Signals {
            #[cfg(unix)]
            terminate: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(DaemonError::Signals)?,
        })
    }

    async fn wait(mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.terminate.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn logged_database_urls_carry_no_password() {
        assert_eq!(super::without_password("postgres://c7:s3cret@db:5432/c7"), "postgres://c7:***@db:5432/c7");
        assert_eq!(super::without_password("sqlite:///var/lib/c7sync/c7sync.db"), "sqlite:///var/lib/c7sync/c7sync.db");
    }
}
