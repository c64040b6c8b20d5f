//! The admin console at `/console`: server-rendered pages over the same [`crate::admin`]
//! functions the CLI and the `/v1` API call, so the browser adds no second way to change
//! anything. Signed in with the admin token; sessions are signed cookies (see [`session`]).

mod assets;
mod audit;
mod delivery;
mod imports;
mod layout;
mod runs;
mod scim;
pub mod session;
mod sign_in;
mod teamspaces;

use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::api::{ApiError, ApiState};
use crate::clock::Millis;
use layout::{page, Notice};
use session::{Session, SessionKeys};

/// What console handlers share.
#[derive(Clone)]
pub struct ConsoleState {
    api: ApiState,
    /// `None` while no admin token is set: the console then only says how to turn it on.
    keys: Option<SessionKeys>,
    /// Cookies are `Secure` when c7sync is reached over https (`[server] public_url`).
    secure: bool,
}

impl ConsoleState {
    /// The console over the API's state.
    pub fn new(api: ApiState) -> Self {
        let keys = api.admin_token().map(SessionKeys::new);
        let secure = api.config.server.public_url.as_ref().is_some_and(|u| u.scheme() == "https");
        ConsoleState { api, keys, secure }
    }
}

/// The console's routes, to be nested at `/console`.
pub fn router(state: ConsoleState) -> Router {
    Router::new()
        .route("/", get(teamspaces::overview))
        .route("/sign-in", get(sign_in::form).post(sign_in::submit))
        .route("/sign-out", post(sign_in::sign_out))
        .route("/assets/{name}", get(assets::serve))
        .route("/teamspaces/{teamspace}", get(teamspaces::members))
        .route("/teamspaces/{teamspace}/members", post(teamspaces::add))
        .route("/teamspaces/{teamspace}/members/{oid}/remove", post(teamspaces::remove))
        .route(
            "/teamspaces/{teamspace}/import",
            get(imports::form).post(imports::submit).layer(DefaultBodyLimit::max(crate::api::manage::MAX_IMPORT_BYTES)),
        )
        .route("/teamspaces/{teamspace}/scim", get(scim::page_route))
        .route("/teamspaces/{teamspace}/scim/tokens", post(scim::create))
        .route("/teamspaces/{teamspace}/scim/tokens/{id}/revoke", post(scim::revoke))
        .route("/runs", get(runs::list))
        .route("/runs/{run}", get(runs::show))
        .route("/runs/{run}/approve", post(runs::approve))
        .route("/audit", get(audit::page))
        .route("/delivery", get(delivery::page_route))
        .route("/delivery/{event}/retry", post(delivery::retry))
        .fallback(|| async { ConsoleError::new(StatusCode::NOT_FOUND, "There is no such page.") })
        .with_state(state)
}

/// A signed-in request; without a valid session the browser is sent to sign in.
pub struct Signed(pub Session);

impl FromRequestParts<ConsoleState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ConsoleState) -> Result<Self, Self::Rejection> {
        let to_sign_in = || Redirect::to("/console/sign-in").into_response();
        let Some(keys) = &state.keys else { return Err(to_sign_in()) };
        match keys.open(session::cookie(&parts.headers, session::SESSION_COOKIE), Millis::now()) {
            Ok(session) => Ok(Signed(session)),
            Err(refused) => {
                if refused != session::Refused::Missing {
                    tracing::info!(?refused, path = %parts.uri.path(), "console session refused");
                }
                Err(to_sign_in())
            }
        }
    }
}

/// A form with nothing but its CSRF token.
#[derive(Deserialize)]
pub struct NoFields {}

#[derive(Deserialize)]
struct WithCsrf<T> {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    form: T,
}

/// A state-changing form from a signed-in session, with that session's CSRF token.
pub struct Posted<T> {
    session: Session,
    form: T,
}

impl<T: DeserializeOwned + Send> FromRequest<ConsoleState> for Posted<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &ConsoleState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let Signed(session) = Signed::from_request_parts(&mut parts, state).await?;
        let request = Request::from_parts(parts, body);
        let form: Form<WithCsrf<T>> = Form::from_request(request, state).await.map_err(|rejection| {
            ConsoleError::new(StatusCode::BAD_REQUEST, rejection.body_text()).with(&session).into_response()
        })?;
        check_csrf(state, &session, &form.0.csrf).map_err(IntoResponse::into_response)?;
        Ok(Posted { session, form: form.0.form })
    }
}

/// Refuses a form whose CSRF token is not this session's.
fn check_csrf(state: &ConsoleState, session: &Session, presented: &str) -> Result<(), ConsoleError> {
    let valid = state.keys.as_ref().is_some_and(|keys| keys.csrf_matches(session, presented));
    if valid {
        return Ok(());
    }
    tracing::warn!("console form refused: missing or wrong CSRF token");
    Err(ConsoleError::new(
        StatusCode::FORBIDDEN,
        "This form did not come from this console session (its CSRF token is missing or wrong). \
         Reload the page and try again.",
    )
    .with(session))
}

/// A page that could not be shown or an action that was refused, as a page saying why.
pub struct ConsoleError {
    status: StatusCode,
    message: String,
    session: Option<Session>,
}

impl ConsoleError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ConsoleError { status, message: message.into(), session: None }
    }

    /// Shows the navigation of `session` around the message.
    fn with(mut self, session: &Session) -> Self {
        self.session = Some(session.clone());
        self
    }
}

impl From<ApiError> for ConsoleError {
    fn from(error: ApiError) -> Self {
        ConsoleError::new(error.status(), error.message())
    }
}

impl From<crate::admin::AdminError> for ConsoleError {
    fn from(error: crate::admin::AdminError) -> Self {
        ApiError::from(error).into()
    }
}

impl From<crate::store::StoreError> for ConsoleError {
    fn from(error: crate::store::StoreError) -> Self {
        ApiError::from(error).into()
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let title = if self.status.is_client_error() { "Not done" } else { "Something went wrong" };
        let notice = Notice::Problem(self.message);
        let body = page(
            title,
            self.session.as_ref(),
            Some(&notice),
            maud::html! {
                p { a href="/console" { "Back to the teamspaces" } }
            },
        );
        (self.status, html_headers(), body.into_string()).into_response()
    }
}

/// Headers every console page carries: HTML, never cached (pages show members and tokens),
/// never framed, scripts only from the console itself.
fn html_headers() -> [(header::HeaderName, &'static str); 5] {
    [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ]
}

/// A rendered page as a response.
fn respond(status: StatusCode, markup: maud::Markup) -> Response {
    (status, html_headers(), markup.into_string()).into_response()
}

/// The configured teamspace `name` and its row id, or a 404 page.
fn teamspace<'a>(
    state: &'a ConsoleState,
    name: &str,
    session: &Session,
) -> Result<(&'a crate::config::TeamspaceConfig, i64), ConsoleError> {
    state.api.configured(name).ok_or_else(|| {
        ConsoleError::new(StatusCode::NOT_FOUND, format!("There is no teamspace `{name}`.")).with(session)
    })
}
