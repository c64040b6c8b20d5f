//! The API for Context7's side (`/v1`). The token check for gateways (`authorize`) needs no
//! credentials; everything else is behind `Authorization: Bearer $C7SYNC_ADMIN_TOKEN`, and
//! answers 401 while that variable is unset. Errors are `{"error": {"code", "message"}}`, and
//! `/v1/openapi.json` describes exactly these routes.

pub mod manage;
mod teamspaces;
mod token_check;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::admin::AdminError;
use crate::config::Config;
use crate::domain::Oid;
use crate::lookup::MemberLookup;
use crate::reconcile::{ReconcileError, Reconciler};
use crate::store::{EventFilter, Store};
use crate::token::TokenService;

/// Most items per page.
const MAX_LIMIT: i64 = 1000;
const OPENAPI: &str = include_str!("openapi.json");

/// What the API needs: one shared allocation, since axum clones the state for every request
/// (a clone of each field was some twenty reference-count updates per request).
#[derive(Clone)]
pub struct ApiState(Arc<ApiParts>);

/// [`ApiState`]'s fields.
pub struct ApiParts {
    /// The store.
    pub store: Store,
    /// SHA-256 of the admin token (compared in constant time); `None` while it is not set.
    admin_token: Option<crate::secret::SecretHash>,
    /// Configured teamspaces: slug → row id.
    pub teamspaces: Arc<HashMap<String, i64>>,
    members: MemberLookup,
    tokens: Arc<TokenService>,
    /// Every change goes through the reconcile core.
    pub reconciler: Reconciler,
    /// The configuration the daemon started with.
    pub config: Arc<Config>,
}

impl std::ops::Deref for ApiState {
    type Target = ApiParts;

    fn deref(&self) -> &ApiParts {
        &self.0
    }
}

impl ApiState {
    /// State for the `/v1` routes; `members` should be kept fresh by its own task.
    pub fn new(
        reconciler: Reconciler,
        config: Arc<Config>,
        admin_token: Option<crate::secret::SecretHash>,
        teamspaces: HashMap<String, i64>,
        members: MemberLookup,
        tokens: Arc<TokenService>,
    ) -> Self {
        let store = reconciler.store().clone();
        ApiState(Arc::new(ApiParts {
            store,
            admin_token,
            teamspaces: Arc::new(teamspaces),
            members,
            tokens,
            reconciler,
            config,
        }))
    }

    /// A configured teamspace and its row id.
    pub fn configured(&self, name: &str) -> Option<(&crate::config::TeamspaceConfig, i64)> {
        Some((self.config.teamspace(name).ok()?, *self.teamspaces.get(name)?))
    }

    /// The admin token's hash, when the admin API is on.
    pub fn admin_token(&self) -> Option<&crate::secret::SecretHash> {
        self.admin_token.as_ref()
    }

    /// The Tenant URL to paste into Entra's provisioning page: `[server] public_url` + `/scim/v2`.
    pub fn scim_tenant_url(&self) -> Option<String> {
        self.config.server.public_url.as_ref().map(|u| format!("{}/scim/v2", u.as_str().trim_end_matches('/')))
    }
}

/// An API error.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// The request field at fault, for a 400 on a bad field.
    field: Option<&'static str>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), field: None }
    }

    /// The status, for front ends that show it their own way (the console).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What went wrong, in words.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        if let Some(field) = self.field {
            body["error"]["field"] = serde_json::json!(field);
        }
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(crate::scim::RETRY_AFTER_S));
        }
        response
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match &error {
            StoreError::NotFound(what) => {
                return ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
            }
            StoreError::Refused(why) => return ApiError::new(StatusCode::CONFLICT, "refused", why.clone()),
            StoreError::Duplicate(_) => return ApiError::new(StatusCode::CONFLICT, "conflict", error.to_string()),
            _ => {}
        }
        if error.is_transient() {
            tracing::warn!(%error, "API request refused: database unavailable");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database is unavailable; retry later",
            );
        }
        tracing::error!(%error, "API request failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the c7sync log")
    }
}

impl From<AdminError> for ApiError {
    fn from(error: AdminError) -> Self {
        match error {
            AdminError::Invalid { field, message } => ApiError {
                field: Some(field.as_str()),
                ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_field", format!("{}: {message}", field.as_str()))
            },
            AdminError::NotFound(why) => ApiError::new(StatusCode::NOT_FOUND, "not_found", why),
            AdminError::Conflict(why) => ApiError::new(StatusCode::CONFLICT, "conflict", why),
            AdminError::Reconcile(error) => error.into(),
        }
    }
}

impl From<ReconcileError> for ApiError {
    fn from(error: ReconcileError) -> Self {
        match error {
            ReconcileError::Store(error) => error.into(),
            ReconcileError::Refused(why) => ApiError::new(StatusCode::CONFLICT, "refused", why),
            running @ ReconcileError::AlreadyRunning { .. } => {
                ApiError::new(StatusCode::CONFLICT, "already_running", running.to_string())
            }
        }
    }
}

/// The `/v1` routes.
pub fn router(state: ApiState) -> Router {
    let protected = Router::new()
        .route("/introspect", post(token_check::introspect))
        .route("/teamspaces", get(teamspaces::list))
        .route("/teamspaces/{teamspace}", get(teamspaces::get))
        .route("/teamspaces/{teamspace}/test", post(teamspaces::test))
        .route("/teamspaces/{teamspace}/members", get(members).post(manage::add_member))
        .route("/teamspaces/{teamspace}/members/{oid}", get(member).delete(manage::remove_member))
        .route(
            "/teamspaces/{teamspace}/imports",
            post(manage::import).layer(DefaultBodyLimit::max(manage::MAX_IMPORT_BYTES)),
        )
        .route("/teamspaces/{teamspace}/scim-tokens", get(manage::scim_tokens).post(manage::create_scim_token))
        .route("/teamspaces/{teamspace}/scim-tokens/{id}", delete(manage::revoke_scim_token))
        .route("/runs/{run}/approve", post(manage::approve))
        .route("/events", get(manage::events))
        .route("/events/{event}/retry", post(manage::retry_event))
        .route("/teamspaces/{teamspace}/runs", get(runs))
        .route("/teamspaces/{teamspace}/events", get(events))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        .route("/teamspaces/{teamspace}/authorize", any(token_check::authorize))
        .route("/teamspaces/{teamspace}/authorize/{*forwarded}", any(token_check::authorize_forwarded))
        .merge(protected)
        .with_state(state)
}

async fn authenticate(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let presented = crate::secret::bearer(request.headers());
    let Some(expected) = &state.admin_token else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "admin_api_off",
            "the admin API is off: start c7sync serve with C7SYNC_ADMIN_TOKEN set",
        )
        .into_response();
    };
    let valid = presented.is_some_and(|t| expected.matches(t));
    if !valid {
        return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "a valid admin bearer token is required")
            .into_response();
    }
    next.run(request).await
}

fn teamspace_id(state: &ApiState, name: &str) -> Result<i64, ApiError> {
    state
        .teamspaces
        .get(name)
        .copied()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "teamspace_not_found", format!("no teamspace `{name}`")))
}

/// A configured teamspace and its row id, or 404.
fn configured<'a>(state: &'a ApiState, name: &str) -> Result<(&'a crate::config::TeamspaceConfig, i64), ApiError> {
    state
        .configured(name)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "teamspace_not_found", format!("no teamspace `{name}`")))
}

async fn member(State(state): State<ApiState>, Path((teamspace, oid)): Path<(String, String)>) -> Response {
    let result = async {
        let id = teamspace_id(&state, &teamspace)?;
        let oid: Oid =
            oid.parse().map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_oid", format!("`{oid}`: {e}")))?;
        match state.members.find(id, oid).await? {
            Some(found) => Ok(([(header::CONTENT_TYPE, "application/json")], found.json.clone()).into_response()),
            None => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "member_not_found",
                format!("{oid} is not provisioned in {teamspace}"),
            )),
        }
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Debug, Deserialize)]
struct Page {
    limit: Option<i64>,
    cursor: Option<String>,
    after: Option<i64>,
}

fn limit(page: &Page) -> Result<i64, ApiError> {
    limit_of(page.limit)
}

fn limit_of(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        Some(n) if !(1..=MAX_LIMIT).contains(&n) => {
            Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_limit", format!("limit must be 1..={MAX_LIMIT}")))
        }
        Some(n) => Ok(n),
        None => Ok(100),
    }
}

fn bad_query(rejection: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", rejection.to_string())
}

type PageQuery = Result<Query<Page>, axum::extract::rejection::QueryRejection>;

/// The teamspace id, the page parameters and the page size of a list request.
fn scope(state: &ApiState, teamspace: &str, page: PageQuery) -> Result<(i64, Page, i64), ApiError> {
    let Query(page) = page.map_err(bad_query)?;
    let id = teamspace_id(state, teamspace)?;
    let limit = limit(&page)?;
    Ok((id, page, limit))
}

async fn members(
    State(state): State<ApiState>,
    Path(teamspace): Path<String>,
    page: PageQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (id, page, limit) = scope(&state, &teamspace, page)?;
    let after = page
        .cursor
        .as_deref()
        .map(|c| c.parse::<Oid>().map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_cursor", e.to_string())))
        .transpose()?;
    let members = state.store.members_after(id, after, limit).await?;
    let next = (members.len() as i64 == limit).then(|| members.last().map(|m| m.oid.to_string())).flatten();
    Ok(Json(serde_json::json!({ "members": members, "next_cursor": next })))
}

async fn runs(
    State(state): State<ApiState>,
    Path(teamspace): Path<String>,
    page: PageQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (id, _, limit) = scope(&state, &teamspace, page)?;
    let runs = state.store.list_runs(Some(id), limit).await?;
    Ok(Json(serde_json::json!({ "runs": runs })))
}

async fn events(
    State(state): State<ApiState>,
    Path(teamspace): Path<String>,
    page: PageQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (id, page, limit) = scope(&state, &teamspace, page)?;
    let filter = EventFilter { teamspace_id: Some(id), status: None, after: page.after, limit };
    let events: Vec<_> = state.store.list_events(&filter).await?.into_iter().map(|e| e.event).collect();
    let next = events.last().map(|e| e.id);
    Ok(Json(serde_json::json!({ "events": events, "next_after": next })))
}
