//! The SCIM 2.0 service provider Entra provisions into (`/scim/v2`): bearer token → one
//! teamspace; Users and Groups stored whole; discovery that says exactly what works.

mod discovery;
mod error;
pub mod filter;
mod handlers;
pub mod patch;
pub mod provision;
mod resource;
pub mod schema;
pub mod token;
mod unique_keys;
mod writer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

pub use error::{ScimError, RETRY_AFTER_S, SCIM_JSON};

use crate::reconcile::Reconciler;
use crate::store::TokenCredential;
use provision::Policy;

/// A token's stored credential is re-read after this long, so a revocation by another process
/// (`c7sync scim-token revoke`) takes effect within it.
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(1);

/// A token's credential (`None`: revoked or deleted) and when it was read.
type CachedCredential = (Option<TokenCredential>, Instant);

/// What SCIM handlers share.
#[derive(Clone)]
pub struct ScimState {
    /// The reconcile core (and through it the store).
    pub reconciler: Reconciler,
    /// Teamspaces with a `scim` source, by slug, and how their users become claims.
    pub policies: Arc<HashMap<String, Policy>>,
    /// Credentials by token id, with when they were read.
    tokens: Arc<Mutex<HashMap<i64, CachedCredential>>>,
    /// Each teamspace's write batcher.
    writers: writer::Writers,
    /// Each teamspace's share of the server.
    limits: Arc<HashMap<String, TeamspaceLimits>>,
    /// When each token's use was last recorded.
    touched: Arc<Mutex<HashMap<i64, Instant>>>,
    /// `[server] public_url`, for `meta.location`.
    public_url: Option<Arc<str>>,
}

/// Request bodies one teamspace may have in flight at once: a token that sends slowly (or
/// many large bodies) queues behind itself, never behind or in front of another teamspace.
pub const MAX_BODIES_READ: usize = 4;

/// Searches on attributes with no index (each reads every resource of the teamspace) that
/// one teamspace may run at once. More wait their turn, so one teamspace's report cannot take
/// every database connection and CPU from the others' look-ups.
pub const MAX_SCANS: usize = 1;

/// A token's "last used" is written at most this often: coarse, and no write per request.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// One teamspace's share of the server: its own queues for body reads and full scans.
#[derive(Debug, Clone)]
pub struct TeamspaceLimits {
    /// Body reads in flight (see [`MAX_BODIES_READ`]).
    pub bodies: Arc<tokio::sync::Semaphore>,
    /// Unindexed searches in flight (see [`MAX_SCANS`]).
    pub scans: Arc<tokio::sync::Semaphore>,
}

impl TeamspaceLimits {
    fn new() -> Self {
        TeamspaceLimits {
            bodies: Arc::new(tokio::sync::Semaphore::new(MAX_BODIES_READ)),
            scans: Arc::new(tokio::sync::Semaphore::new(MAX_SCANS)),
        }
    }
}

impl ScimState {
    /// State for the SCIM routes.
    pub fn new(reconciler: Reconciler, policies: HashMap<String, Policy>) -> Self {
        let limits = policies.keys().map(|teamspace| (teamspace.clone(), TeamspaceLimits::new())).collect();
        ScimState {
            reconciler,
            policies: Arc::new(policies),
            tokens: Arc::default(),
            writers: Arc::default(),
            limits: Arc::new(limits),
            touched: Arc::default(),
            public_url: None,
        }
    }

    /// Resource locations under `url` (`[server] public_url`) instead of the request's `Host`,
    /// which a client chooses.
    pub fn with_public_url(mut self, url: Option<&url::Url>) -> Self {
        self.public_url = url.map(|u| format!("{}/scim/v2", u.as_str().trim_end_matches('/')).into());
        self
    }

    /// Records that token `id` was used, at most once per [`TOUCH_EVERY`], off the request's
    /// path; a failed write is only logged (it is a hint for rotation, not a record).
    fn touch(&self, id: i64) {
        let Ok(mut touched) = self.touched.lock() else { return };
        if touched.get(&id).is_some_and(|at| at.elapsed() < TOUCH_EVERY) {
            return;
        }
        touched.insert(id, Instant::now());
        let store = self.reconciler.store().clone();
        tokio::spawn(async move {
            let now = crate::clock::Millis::now();
            // To the minute, as `scim-token list` promises: finer would only suggest precision.
            let minute = crate::clock::Millis(now.0 - now.0.rem_euclid(60_000));
            if let Err(error) = store.touch_scim_token(id, minute).await {
                tracing::debug!(%error, token_id = id, "could not record that a SCIM token was used");
            }
        });
    }

    async fn credential(&self, id: i64) -> Result<Option<TokenCredential>, ScimError> {
        let cached = self.tokens.lock().ok().and_then(|cache| cache.get(&id).cloned());
        if let Some((credential, _)) = cached.filter(|(_, read_at)| read_at.elapsed() < TOKEN_CACHE_TTL) {
            return Ok(credential);
        }
        let credential = self.reconciler.store().scim_token(id).await?;
        if let Ok(mut cache) = self.tokens.lock() {
            // Bounded: ids that were never issued are not kept.
            if credential.is_some() {
                cache.insert(id, (credential.clone(), Instant::now()));
            }
        }
        Ok(credential)
    }
}

/// The teamspace a request's token belongs to.
#[derive(Debug, Clone)]
pub struct ScimTeamspace {
    /// Row id.
    pub teamspace_id: i64,
    /// Slug.
    pub name: String,
    /// Its scim source's policy.
    pub policy: Policy,
    /// `http(s)://host/scim/v2`, for `meta.location`.
    pub base_url: String,
    /// Its share of the server.
    pub limits: TeamspaceLimits,
}

/// The `/scim/v2` routes (to be nested by the caller).
pub fn router(state: ScimState) -> Router {
    let resources = Router::new()
        .route("/ServiceProviderConfig", get(discovery::service_provider_config))
        .route("/ResourceTypes", get(discovery::resource_types))
        .route("/ResourceTypes/{id}", get(discovery::resource_type))
        .route("/Schemas", get(discovery::schemas))
        .route("/Schemas/{id}", get(discovery::schema))
        .route("/.search", post(handlers::search_all))
        .route("/Users", get(handlers::list_users).post(handlers::create_user))
        .route("/Users/.search", post(handlers::search_users))
        .route(
            "/Users/{id}",
            get(handlers::get_user)
                .put(handlers::replace_user)
                .patch(handlers::patch_user)
                .delete(handlers::delete_user),
        )
        .route("/Groups", get(handlers::list_groups).post(handlers::create_group))
        .route("/Groups/.search", post(handlers::search_groups))
        .route(
            "/Groups/{id}",
            get(handlers::get_group)
                .put(handlers::replace_group)
                .patch(handlers::patch_group)
                .delete(handlers::delete_group),
        )
        .fallback(|| async { ScimError::not_found("no such SCIM endpoint") })
        .method_not_allowed_fallback(|| async { ScimError::method_not_allowed("method not allowed on this endpoint") });
    resources
        .layer(middleware::from_fn(require_utf8_query))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

/// Refuses a query string that is not UTF-8 once percent-decoded. Query parsing would
/// replace the bad bytes silently, and a filter for a different value than the one sent
/// answers a question nobody asked.
async fn require_utf8_query(request: Request, next: Next) -> Response {
    let query = request.uri().query().unwrap_or_default().replace('+', " ");
    if percent_encoding::percent_decode_str(&query).decode_utf8().is_err() {
        return ScimError::invalid_value("the query string is not UTF-8 once percent-decoded").into_response();
    }
    next.run(request).await
}

/// Bearer token → [`ScimTeamspace`], or 401 (403 when the teamspace no longer accepts SCIM).
async fn authenticate(State(state): State<ScimState>, mut request: Request, next: Next) -> Response {
    let presented = crate::secret::bearer(request.headers());
    let Some((id, secret)) = presented.and_then(token::split) else {
        return ScimError::unauthorized("a SCIM bearer token is required (c7sync scim-token create)").into_response();
    };
    let credential = match state.credential(id).await {
        Ok(credential) => credential,
        Err(error) => return error.into_response(),
    };
    let Some(credential) = credential.filter(|c| !c.revoked && token::verify(secret, &c.secret_hash)) else {
        return ScimError::unauthorized("the bearer token is not valid or was revoked").into_response();
    };
    let Some(policy) = state.policies.get(&credential.teamspace).cloned() else {
        return ScimError::forbidden(format!(
            "teamspace {} has no `scim` source in c7sync.toml; SCIM is off for it",
            credential.teamspace
        ))
        .into_response();
    };
    let Some(limits) = state.limits.get(&credential.teamspace).cloned() else {
        return ScimError::internal("no limits for a teamspace with a policy").into_response();
    };
    state.touch(id);
    let base_url = match &state.public_url {
        Some(url) => url.to_string(),
        None => {
            let headers = request.headers();
            // Only a plain host[:port] is echoed back into locations.
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)))
                .unwrap_or("localhost");
            let https = headers.get("x-forwarded-proto").is_some_and(|p| p.as_bytes() == b"https");
            format!("{}://{host}/scim/v2", if https { "https" } else { "http" })
        }
    };
    request.extensions_mut().insert(ScimTeamspace {
        teamspace_id: credential.teamspace_id,
        name: credential.teamspace,
        policy,
        base_url,
        limits,
    });
    next.run(request).await
}
