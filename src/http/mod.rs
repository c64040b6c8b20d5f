//! The daemon's HTTP surface: `/healthz` (the process is up), `/readyz` (the database
//! answers), `/metrics`, SCIM under `/scim/v2`, the API under `/v1` and the admin console
//! under `/console` (where `/` leads).

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

pub mod deadline;
pub mod listener;

/// A readiness probe that takes longer than this counts as a failure.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// What handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// This process's metrics.
    pub metrics: Arc<Metrics>,
    /// SHA-256 of the bearer token `/metrics` requires (`$C7SYNC_METRICS_TOKEN`); without one
    /// it is open, and shows teamspace names and counts to whoever reaches the port.
    metrics_token: Option<crate::secret::SecretHash>,
}

impl AppState {
    /// State with an open `/metrics`.
    pub fn new(store: Store, metrics: Arc<Metrics>) -> Self {
        AppState { store, metrics, metrics_token: None }
    }

    /// `/metrics` answers only a request bearing `token`.
    pub fn with_metrics_token(mut self, token: Option<&str>) -> Self {
        self.metrics_token = token.map(crate::secret::SecretHash::of);
        self
    }
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
        let console = crate::console::router(crate::console::ConsoleState::new(api.clone()));
        router = router
            .nest("/v1", crate::api::router(api))
            .nest("/console", console)
            .route("/", get(|| async { axum::response::Redirect::to("/console") }))
            .route("/console/", get(|| async { axum::response::Redirect::to("/console") }));
    }
    router.layer(middleware::from_fn(deadline::apply))
}

/// Counts SCIM requests by method and status, with their latency.
async fn observe_scim(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.observe_scim(&method, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

async fn metrics(State(state): State<AppState>, headers: header::HeaderMap) -> Response {
    if let Some(expected) = &state.metrics_token {
        let valid = crate::secret::bearer(&headers).is_some_and(|t| expected.matches(t));
        if !valid {
            let body = Json(serde_json::json!({ "error": "a bearer token ($C7SYNC_METRICS_TOKEN) is required" }));
            return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response();
        }
    }
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
    match tokio::time::timeout(READY_TIMEOUT, state.store.readiness(crate::clock::Millis::now())).await {
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
