//! The token check over HTTP: `/v1/teamspaces/{t}/authorize` for gateways (nginx
//! `auth_request`, APIM `send-request`, Envoy `ext_authz`: the developer's bearer token in,
//! 200/401/403 out, no admin token needed) and `/v1/introspect` (RFC 7662, for callers holding
//! the admin token).

use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{ApiError, ApiState};
use crate::token::{Accepted, Answer, Reason, TeamspaceTokens, Verdict};

/// `GET` (any method) `/v1/teamspaces/{teamspace}/authorize`.
pub async fn authorize(State(state): State<ApiState>, Path(teamspace): Path<String>, headers: HeaderMap) -> Response {
    answer(&state, &teamspace, &headers).await
}

/// `/v1/teamspaces/{teamspace}/authorize/{path…}`: gateways that append the original path.
pub async fn authorize_forwarded(
    State(state): State<ApiState>,
    Path((teamspace, _forwarded)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    answer(&state, &teamspace, &headers).await
}

async fn answer(state: &ApiState, name: &str, headers: &HeaderMap) -> Response {
    let Some(teamspace) = state.tokens.teamspace(name).cloned() else {
        return ApiError::new(StatusCode::NOT_FOUND, "teamspace_not_found", format!("no teamspace `{name}`"))
            .into_response();
    };
    let Some(token) = bearer(headers) else {
        let challenge = challenge(&teamspace, None);
        return refusal(
            StatusCode::UNAUTHORIZED,
            Some(challenge),
            "missing_token",
            "send the developer's access token as `Authorization: Bearer <token>`",
            None,
        );
    };
    match state.tokens.check(&teamspace, token).await {
        Verdict::Accepted(accepted) => accepted_response(&teamspace, &accepted),
        Verdict::Refused { reason, detail } => refused_response(&teamspace, reason, &detail),
        Verdict::Undecided { why, retry_after } => unavailable(&why, retry_after.as_secs()),
    }
}

fn accepted_response(teamspace: &TeamspaceTokens, accepted: &Accepted) -> Response {
    let body = accepted.body(&teamspace.name);
    let Ok(json) = serde_json::to_vec(&body) else {
        return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the answer could not be encoded")
            .into_response();
    };
    // Sized for every header of the answer, content-length included: growing the map twice
    // per request showed in the cold check's profile.
    let mut headers = HeaderMap::with_capacity(8);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in [
        ("x-c7sync-teamspace", body.teamspace),
        ("x-c7sync-tenant-id", body.tenant_id),
        ("x-c7sync-oid", body.oid),
        ("x-c7sync-email", body.email),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let mut response = Response::new(axum::body::Body::from(json));
    *response.headers_mut() = headers;
    response
}

fn refused_response(teamspace: &TeamspaceTokens, reason: Reason, detail: &str) -> Response {
    let fix = reason.fix(&teamspace.expected);
    match reason.answer() {
        Answer::InvalidToken => {
            let challenge = challenge(teamspace, Some(("invalid_token", reason, &fix)));
            refusal(StatusCode::UNAUTHORIZED, Some(challenge), reason.code(), detail, Some(&fix))
        }
        Answer::InsufficientScope => {
            let challenge = challenge(teamspace, Some(("insufficient_scope", reason, &fix)));
            refusal(StatusCode::FORBIDDEN, Some(challenge), reason.code(), detail, Some(&fix))
        }
        // A valid token: no challenge, since signing in again would not help.
        Answer::Forbidden => refusal(StatusCode::FORBIDDEN, None, reason.code(), detail, Some(&fix)),
    }
}

/// `Bearer [error=…, error_description="<code>: <fix>", scope=…,] [resource_metadata=…]`.
fn challenge(teamspace: &TeamspaceTokens, error: Option<(&str, Reason, &str)>) -> String {
    let mut params = Vec::new();
    if let Some((error, reason, fix)) = error {
        params.push(format!("error=\"{error}\""));
        params.push(format!("error_description=\"{}\"", quoted(&format!("{}: {fix}", reason.code()))));
        if reason == Reason::MissingScope {
            params.push(format!("scope=\"{}\"", quoted(&teamspace.expected.required_scope)));
        }
    }
    if let Some(url) = &teamspace.resource_metadata_url {
        params.push(format!("resource_metadata=\"{}\"", quoted(url)));
    }
    if params.is_empty() {
        "Bearer".to_owned()
    } else {
        format!("Bearer {}", params.join(", "))
    }
}

/// Text fit for a quoted auth-param (RFC 6750 §3: printable ASCII without `"` and `\`).
fn quoted(text: &str) -> String {
    text.chars()
        .filter_map(|c| match c {
            '"' => Some('\''),
            '\\' => Some('/'),
            '–' | '—' => Some('-'),
            ' '..='~' => Some(c),
            _ => None,
        })
        .collect()
}

fn refusal(status: StatusCode, challenge: Option<String>, code: &str, message: &str, fix: Option<&str>) -> Response {
    let body = serde_json::json!({ "error": { "code": code, "message": message, "fix": fix } });
    let mut response = (status, Json(body)).into_response();
    if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn unavailable(why: &str, retry_after: u64) -> Response {
    let body = serde_json::json!({ "error": { "code": "unavailable", "message": why } });
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
    response
}

/// The token of `Authorization: Bearer <token>` (the scheme is case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// `POST /v1/introspect`'s form (RFC 7662 §2.1), plus which teamspace to judge it for.
#[derive(Debug, Deserialize)]
pub struct IntrospectForm {
    token: Option<String>,
    teamspace: Option<String>,
    // Accepted as RFC 7662 §2.1 allows, and not needed: only access tokens are introspected.
    #[allow(dead_code)]
    token_type_hint: Option<String>,
}

/// `POST /v1/introspect`.
pub async fn introspect(State(state): State<ApiState>, form: Result<Form<IntrospectForm>, FormRejection>) -> Response {
    let result = async {
        let Form(form) = form.map_err(|e| match crate::http::deadline::BodyTimeout::cause_of(&e) {
            Some(timeout) => ApiError::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", timeout.to_string()),
            None => ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()),
        })?;
        let token = form.token.filter(|t| !t.is_empty()).ok_or_else(|| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", "the form needs a `token` field (RFC 7662 §2.1)")
        })?;
        let teamspace: Arc<TeamspaceTokens> = match form.teamspace.as_deref() {
            Some(name) => state.tokens.teamspace(name).cloned().ok_or_else(|| {
                ApiError::new(StatusCode::BAD_REQUEST, "teamspace_not_found", format!("no teamspace `{name}`"))
            })?,
            None => match state.tokens.teamspaces_for(&token).as_slice() {
                [] => return Ok(inactive()),
                [one] => Arc::clone(one),
                several => {
                    let names: Vec<&str> = several.iter().map(|t| t.name.as_str()).collect();
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "ambiguous_teamspace",
                        format!(
                            "teamspaces {} share this tenant and audience; say which with `teamspace=`",
                            names.join(", ")
                        ),
                    ));
                }
            },
        };
        Ok(match state.tokens.check(&teamspace, &token).await {
            Verdict::Accepted(accepted) => active(&teamspace, &accepted),
            Verdict::Refused { .. } => inactive(),
            Verdict::Undecided { why, retry_after } => unavailable(&why, retry_after.as_secs()),
        })
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

fn active(teamspace: &TeamspaceTokens, accepted: &Accepted) -> Response {
    let token = &accepted.token;
    let body = serde_json::json!({
        "active": true,
        "sub": token.subject,
        "oid": token.oid,
        "tid": token.tenant_id,
        "teamspace": teamspace.name,
        "email": accepted.member.record.email,
        "scope": token.scopes.join(" "),
        "client_id": token.client_id,
        "iss": token.issuer,
        "aud": token.audience,
        "exp": token.expires_at,
        "iat": token.issued_at,
        "token_type": "Bearer",
    });
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

/// RFC 7662 §2.2: nothing more is said about a token that is not active.
fn inactive() -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Json(serde_json::json!({ "active": false }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_params_stay_quotable() {
        assert_eq!(quoted("set `\"v\": 2` \\ now – 60–90 min…"), "set `'v': 2` / now - 60-90 min");
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer abc"));
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&headers), None);
    }
}
