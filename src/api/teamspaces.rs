//! Teamspaces as an admin sees them, and their "Test connection" check.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::{configured, ApiError, ApiState};
use crate::admin::teamspaces;

pub(super) async fn list(State(state): State<ApiState>) -> Result<Json<serde_json::Value>, ApiError> {
    let views = teamspaces::list(&state.store, &state.config.teamspaces).await?;
    Ok(Json(serde_json::json!({ "teamspaces": views, "scim_tenant_url": state.scim_tenant_url() })))
}

pub(super) async fn get(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (config, _) = configured(&state, &name)?;
    let mut views = teamspaces::list(&state.store, std::slice::from_ref(config)).await?;
    let view = views
        .pop()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "teamspace_not_found", format!("no teamspace `{name}`")))?;
    Ok(Json(serde_json::json!(view)))
}

pub(super) async fn test(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (config, _) = configured(&state, &name)?;
    let (authority, result) = teamspaces::test_connection(config).await;
    Ok(Json(match result {
        Ok(found) => serde_json::json!({ "ok": true, "teamspace": name, "discovery": found }),
        Err(error) => serde_json::json!({
            "ok": false, "teamspace": name, "discovery_url": authority.discovery_url(), "error": error.to_string(),
        }),
    }))
}
