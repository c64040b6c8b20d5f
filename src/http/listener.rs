//! The HTTP listener: at most `max_connections` connections served at once (the rest wait in
//! the kernel's accept queue, holding no descriptor of ours), each closed when it sends no
//! complete request head within [`HEADER_TIMEOUT`], whether new or idle between requests.
//! Without these, idle and half-sent connections pile up until descriptors run out and
//! `/healthz` stops answering for everyone.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// How long a connection may take to send a request's head, and how long one stays open idle
/// between requests.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long connections still open at shutdown may take to finish their request.
const DRAIN: Duration = Duration::from_secs(10);

/// A failed `accept` (most often: out of descriptors) is retried after this pause, instead of
/// spinning on the error.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `app` on `listener` until `shutdown`, then lets open requests finish.
pub async fn serve(listener: TcpListener, app: Router, max_connections: usize, shutdown: CancellationToken) {
    warn_if_descriptors_short(max_connections);
    let slots = Arc::new(Semaphore::new(max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = shutdown.cancelled() => break,
        };
        let Ok(slot) = slot else { break };
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // Errors here are the client's (a reset, a header timeout): nothing to report.
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!(drain_s = DRAIN.as_secs(), "connections still open at shutdown were closed");
    }
}

/// Descriptors this process may open, from `/proc/self/limits` (Linux), if readable.
fn descriptor_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Descriptors kept for everything but client connections: the database and its WAL, logs,
/// outbound calls to Entra, Graph and the webhook.
const RESERVED_DESCRIPTORS: u64 = 100;

fn warn_if_descriptors_short(max_connections: usize) {
    if let Some(limit) = descriptor_limit().filter(|l| *l < max_connections as u64 + RESERVED_DESCRIPTORS) {
        tracing::warn!(
            limit,
            max_connections,
            "the open-file limit is too low for [server] max_connections; raise LimitNOFILE (ulimit -n) or lower \
             max_connections, or connections will fail once descriptors run out"
        );
    }
}
