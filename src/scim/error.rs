//! SCIM errors in the RFC 7644 §3.12 shape, with `Content-Type: application/scim+json`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The SCIM media type.
pub const SCIM_JSON: &str = "application/scim+json";

/// An error response.
#[derive(Debug, Clone)]
pub struct ScimError {
    /// HTTP status.
    pub status: StatusCode,
    /// `scimType`, for 400 and 409.
    pub scim_type: Option<&'static str>,
    /// A sentence for the admin reading Entra's provisioning log.
    pub detail: String,
}

/// Characters of a detail kept from each end: details quote the request (a filter, a path),
/// and a hostile one must not come back whole.
const DETAIL_ENDS: usize = 300;

/// `detail` with its middle cut out when long, so both what was sent and what is wrong
/// (usually at the end) stay readable.
fn bounded(detail: String) -> String {
    let chars = detail.chars().count();
    if chars <= 2 * DETAIL_ENDS + 50 {
        return detail;
    }
    let head: String = detail.chars().take(DETAIL_ENDS).collect();
    let tail: String = detail.chars().skip(chars - DETAIL_ENDS).collect();
    format!("{head} …({} characters left out)… {tail}", chars - 2 * DETAIL_ENDS)
}

impl ScimError {
    fn new(status: StatusCode, scim_type: Option<&'static str>, detail: impl Into<String>) -> Self {
        ScimError { status, scim_type, detail: bounded(detail.into()) }
    }

    /// 400 invalidSyntax.
    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("invalidSyntax"), detail)
    }

    /// 400 invalidFilter.
    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("invalidFilter"), detail)
    }

    /// 400 invalidValue.
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("invalidValue"), detail)
    }

    /// 400 invalidPath.
    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("invalidPath"), detail)
    }

    /// 400 noTarget.
    pub fn no_target(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("noTarget"), detail)
    }

    /// 400 mutability.
    pub fn mutability(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("mutability"), detail)
    }

    /// 409 uniqueness.
    pub fn uniqueness(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, Some("uniqueness"), detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, detail)
    }

    /// 401 (with `WWW-Authenticate`).
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, None, detail)
    }

    /// 403.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, None, detail)
    }

    /// 412.
    pub fn precondition_failed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PRECONDITION_FAILED, None, detail)
    }

    /// 413.
    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, None, detail)
    }

    /// 415.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, None, detail)
    }

    /// 405.
    pub fn method_not_allowed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, None, detail)
    }

    /// 500: our fault (logged; the detail stays generic).
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "SCIM request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, None, "internal error; see the c7sync log")
    }

    /// 503: the database stayed locked.
    pub fn busy(detail: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %detail, "SCIM request refused: database busy");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, None, "the database is busy; retry")
    }

    /// 503: the database cannot take the request for now (disk full, read-only, gone).
    pub fn unavailable(detail: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %detail, "SCIM request refused: database unavailable");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, None, "the database is unavailable; retry later")
    }

    /// 503: this request must wait for a share of the server that did not come free in time.
    pub fn overloaded(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, None, detail)
    }

    /// 408: the client stopped sending the body.
    pub fn request_timeout(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, None, detail)
    }
}

/// Seconds a client is asked to wait after a 503.
pub const RETRY_AFTER_S: u64 = 5;

impl From<crate::store::StoreError> for ScimError {
    fn from(error: crate::store::StoreError) -> Self {
        match error {
            crate::store::StoreError::Busy(e) => ScimError::busy(e),
            crate::store::StoreError::Unavailable(why) => ScimError::unavailable(why),
            other => ScimError::internal(other),
        }
    }
}

impl From<crate::reconcile::ReconcileError> for ScimError {
    fn from(error: crate::reconcile::ReconcileError) -> Self {
        match error {
            crate::reconcile::ReconcileError::Store(e) => e.into(),
            crate::reconcile::ReconcileError::Refused(why) => ScimError::internal(why),
            busy @ crate::reconcile::ReconcileError::AlreadyRunning { .. } => ScimError::internal(busy.to_string()),
        }
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(scim_type) = self.scim_type {
            body["scimType"] = scim_type.into();
        }
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"c7sync\""));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_S));
        }
        response
    }
}
