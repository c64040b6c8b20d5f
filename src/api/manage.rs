//! The admin's write routes: members by hand, CSV imports, approving held runs, SCIM tokens and
//! delivery retries. Each is one call into [`crate::admin`] — the functions the CLI calls — so
//! the API adds no second way to change anything.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{bad_query, configured, teamspace_id, ApiError, ApiState};
use crate::admin::imports::{self, ImportRequest};
use crate::admin::members::{self as manual, Added, NewMember};
use crate::admin::runs::ReportJson;
use crate::admin::scim_tokens;
use crate::config::CsvMode;
use crate::domain::RunId;
use crate::reconcile::RunOptions;
use crate::store::{DeliveryStatus, EventFilter};

/// The largest CSV body an import accepts: 1M rows of our format are about 80 MB.
pub const MAX_IMPORT_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug, Deserialize)]
pub(super) struct MemberBody {
    oid: String,
    email: String,
    display_name: Option<String>,
}

pub(super) async fn add_member(
    State(state): State<ApiState>,
    Path(teamspace): Path<String>,
    body: Result<Json<MemberBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    teamspace_id(&state, &teamspace)?;
    let Json(body) = body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text()))?;
    let member = NewMember { oid: &body.oid, email: &body.email, display_name: body.display_name.as_deref() };
    let (oid, added, report) = manual::add(&state.reconciler, &teamspace, member).await?;
    let status = if added == Added::Added { StatusCode::CREATED } else { StatusCode::OK };
    let body = ReportJson::new(&report, serde_json::json!({ "oid": oid, "result": added }));
    Ok((status, Json(body)).into_response())
}

pub(super) async fn remove_member(
    State(state): State<ApiState>,
    Path((teamspace, oid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = teamspace_id(&state, &teamspace)?;
    let (oid, removed, report) = manual::remove(&state.reconciler, &teamspace, id, &oid).await?;
    let mut extra = serde_json::to_value(&removed).unwrap_or_default();
    extra["oid"] = serde_json::json!(oid);
    Ok(Json(ReportJson::new(&report, extra)).into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct ImportQuery {
    mode: Option<CsvMode>,
    source: Option<String>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    skip_invalid: bool,
    #[serde(default)]
    allow_mass_removal: bool,
}

pub(super) async fn import(
    State(state): State<ApiState>,
    Path(teamspace): Path<String>,
    query: Result<Query<ImportQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let (config, _) = configured(&state, &teamspace)?;
    let tab_separated = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/tab-separated-values"));
    let request = ImportRequest {
        teamspace: &teamspace,
        source: query.source.as_deref().unwrap_or("csv"),
        mode: query.mode.unwrap_or(CsvMode::Merge),
        options: RunOptions { dry_run: query.dry_run, allow_mass_removal: query.allow_mass_removal },
        skip_invalid: query.skip_invalid,
        origin: serde_json::json!({ "file": "upload", "bytes": body.len(), "via": "api" }),
    };
    let contents = imports::read_upload(body, config.tenant_id, tab_separated).await?;
    let outcome = imports::run(&state.reconciler, &request, contents).await?;
    let mut extra = outcome.report_fields();
    if !outcome.rejected_for_invalid_rows {
        return Ok(Json(ReportJson::new(&outcome.report, extra)).into_response());
    }
    extra["error"] = serde_json::json!({
        "code": "invalid_rows",
        "message": format!(
            "{} invalid row(s); nothing was applied (fix them, or pass skip_invalid=true to apply the valid rows)",
            outcome.invalid.len()
        ),
    });
    Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(ReportJson::new(&outcome.report, extra))).into_response())
}

pub(super) async fn approve(State(state): State<ApiState>, Path(run_id): Path<i64>) -> Result<Response, ApiError> {
    let report = state.reconciler.approve(RunId(run_id)).await?;
    Ok(Json(ReportJson::new(&report, serde_json::json!({ "approves_run_id": run_id }))).into_response())
}

pub(super) async fn scim_tokens(
    State(state): State<ApiState>,
    Path(teamspace): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = teamspace_id(&state, &teamspace)?;
    let tokens = state.store.list_scim_tokens(Some(id)).await?;
    Ok(Json(serde_json::json!({ "tokens": tokens })))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct TokenBody {
    #[serde(default)]
    label: String,
}

pub(super) async fn create_scim_token(
    State(state): State<ApiState>,
    Path(teamspace): Path<String>,
    body: Option<Json<TokenBody>>,
) -> Result<Response, ApiError> {
    let (config, id) = configured(&state, &teamspace)?;
    let label = body.map(|Json(b)| b.label).unwrap_or_default();
    let created = scim_tokens::create(&state.store, config, id, &label).await?;
    tracing::info!(teamspace, token_id = created.id, "SCIM token created through the API");
    let body = serde_json::json!({
        "id": created.id,
        "value": created.value,
        "shown_once": true,
        "tenant_url": state.scim_tenant_url(),
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub(super) async fn revoke_scim_token(
    State(state): State<ApiState>,
    Path((teamspace, token)): Path<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    let id = teamspace_id(&state, &teamspace)?;
    scim_tokens::revoke(&state.store, &teamspace, id, token).await?;
    tracing::info!(teamspace, token_id = token, "SCIM token revoked through the API");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub(super) struct EventQuery {
    teamspace: Option<String>,
    status: Option<String>,
    after: Option<i64>,
    limit: Option<i64>,
}

pub(super) async fn events(
    State(state): State<ApiState>,
    query: Result<Query<EventQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let teamspace_id = query.teamspace.as_deref().map(|t| teamspace_id(&state, t)).transpose()?;
    let status = query
        .status
        .as_deref()
        .map(|s| {
            s.parse::<DeliveryStatus>().map_err(|_| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", "status must be pending, delivered or dead")
            })
        })
        .transpose()?;
    let limit = super::limit_of(query.limit)?;
    let filter = EventFilter { teamspace_id, status, after: query.after, limit };
    let events = state.store.list_events(&filter).await?;
    let next = (events.len() as i64 == limit).then(|| events.last().map(|e| e.event.id)).flatten();
    Ok(Json(serde_json::json!({ "events": events, "next_after": next })))
}

pub(super) async fn retry_event(
    State(state): State<ApiState>,
    Path(event): Path<i64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.store.retry_event(event).await?;
    Ok(Json(serde_json::json!({ "id": event, "status": "pending" })))
}
