//! The daemon's HTTP surface: `/healthz` (the process is up), `/readyz` (the database
//! answers), `/metrics`, SCIM under `/scim/v2`, and the read API under `/v1`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::api::ApiState;
use crate::metrics::Metrics;
use crate::scim::ScimState;
use crate::store::Store;

/// A readiness probe that takes longer than this counts as a failure.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// What handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// This process's metrics.
    pub metrics: Arc<Metrics>,
}

/// Every route the daemon serves; `/v1` only when `api` is given.
pub fn router(state: AppState, scim: ScimState, api: Option<ApiState>) -> Router {
    let scim = crate::scim::router(scim).layer(middleware::from_fn_with_state(state.metrics.clone(), observe_scim));
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
        .nest("/scim/v2", scim);
    if let Some(api) = api {
        router = router.nest("/v1", crate::api::router(api));
    }
    router
}

/// Counts SCIM requests by method and status, with their latency.
async fn observe_scim(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.observe_scim(&method, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics.render(&state.store).await {
        Ok(text) => ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
            .into_response(),
        Err(error) => not_ready(error.to_string()),
    }
}

async fn healthz() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => Json(serde_json::json!({ "status": "ready" })).into_response(),
        Ok(Err(error)) => not_ready(error.to_string()),
        Err(_) => not_ready(format!("the database did not answer within {} s", READY_TIMEOUT.as_secs())),
    }
}

fn not_ready(error: String) -> Response {
    tracing::warn!(%error, "readiness check failed");
    (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "status": "unavailable", "error": error })))
        .into_response()
}
