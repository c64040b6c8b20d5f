//! The daemon's HTTP surface: `/healthz` (the process is up), `/readyz` (the database
//! answers), and SCIM under `/scim/v2`.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::scim::ScimState;
use crate::store::Store;

/// A readiness probe that takes longer than this counts as a failure.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// What handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
}

/// Every route the daemon serves.
pub fn router(state: AppState, scim: ScimState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
        .nest("/scim/v2", crate::scim::router(scim))
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
