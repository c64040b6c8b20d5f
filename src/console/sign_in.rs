//! Signing in with the admin token, and out. The token travels only in a POST body, is checked
//! against its hash, and never appears in a page, a URL or the log.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::layout::{page, Notice};
use super::session::{self, SESSION_COOKIE, SESSION_LIFETIME_MS, SIGN_IN_COOKIE, SIGN_IN_LIFETIME_MS};
use super::{respond, ConsoleError, ConsoleState, NoFields, Posted};
use crate::clock::Millis;

fn console_off() -> Response {
    let body = page(
        "The console is off",
        None,
        None,
        html! {
            section {
                p { "No admin token is set, so nobody can sign in." }
                p { "To turn the console on, start " code { "c7sync serve" } " with the environment variable "
                    code { "C7SYNC_ADMIN_TOKEN" } " set to a long random value, for example:" }
                pre { code { "export C7SYNC_ADMIN_TOKEN=\"$(openssl rand -hex 32)\"\nc7sync serve" } }
                p { "Then sign in here with that value. The same token opens the " code { "/v1" } " API." }
            }
        },
    );
    respond(StatusCode::SERVICE_UNAVAILABLE, body)
}

/// The sign-in form, tied to this browser by a short-lived cookie.
fn sign_in_page(state: &ConsoleState, status: StatusCode, notice: Option<&Notice>) -> Response {
    let Some(keys) = &state.keys else { return console_off() };
    let Ok((cookie, csrf)) = keys.sign_in_form(Millis::now()) else {
        return ConsoleError::new(StatusCode::SERVICE_UNAVAILABLE, "No randomness from the OS; try again.")
            .into_response();
    };
    let body = page(
        "Sign in",
        None,
        notice,
        html! {
            section {
                form method="post" action="/console/sign-in" {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="token" { "Admin token" }
                    input #token type="password" name="token" autocomplete="current-password" required autofocus;
                    p.muted { "The value of " code { "C7SYNC_ADMIN_TOKEN" } " that c7sync serve was started with." }
                    button type="submit" { "Sign in" }
                }
            }
        },
    );
    let set = session::set_cookie(SIGN_IN_COOKIE, &cookie, SIGN_IN_LIFETIME_MS / 1000, state.secure);
    let mut response = respond(status, body);
    if let Ok(value) = set.parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

pub(super) async fn form(State(state): State<ConsoleState>) -> Response {
    sign_in_page(&state, StatusCode::OK, None)
}

#[derive(Deserialize)]
pub(super) struct SignIn {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

pub(super) async fn submit(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    let (Some(keys), Some(admin)) = (&state.keys, state.api.admin_token()) else { return console_off() };
    let now = Millis::now();
    if !keys.sign_in_matches(session::cookie(&headers, SIGN_IN_COOKIE), &form.csrf, now) {
        let notice = Notice::Problem("The sign-in form expired or came from elsewhere; sign in again.".into());
        return sign_in_page(&state, StatusCode::FORBIDDEN, Some(&notice));
    }
    if !admin.matches(form.token.trim()) {
        tracing::warn!("console sign-in refused: wrong admin token");
        let notice =
            Notice::Problem("That is not the admin token. Check C7SYNC_ADMIN_TOKEN on the c7sync host.".into());
        return sign_in_page(&state, StatusCode::UNAUTHORIZED, Some(&notice));
    }
    let Ok((_, value)) = keys.issue(now) else {
        return ConsoleError::new(StatusCode::SERVICE_UNAVAILABLE, "No randomness from the OS; try again.")
            .into_response();
    };
    tracing::info!("console sign-in");
    let mut response = Redirect::to("/console").into_response();
    let cookies = [
        session::set_cookie(SESSION_COOKIE, &value, SESSION_LIFETIME_MS / 1000, state.secure),
        session::set_cookie(SIGN_IN_COOKIE, "", 0, state.secure),
    ];
    for cookie in cookies {
        if let Ok(value) = cookie.parse() {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

pub(super) async fn sign_out(State(state): State<ConsoleState>, _: Posted<NoFields>) -> Response {
    let mut response = Redirect::to("/console/sign-in").into_response();
    if let Ok(value) = session::set_cookie(SESSION_COOKIE, "", 0, state.secure).parse() {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
