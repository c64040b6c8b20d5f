//! The audit trail, filtered by teamspace, member, source and time.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::layout::{self, run_link, when, wide_table};
use super::{respond, ConsoleError, ConsoleState, Signed};
use crate::clock::Millis;
use crate::domain::Oid;
use crate::store::AuditFilter;

/// Events shown at most.
const SHOWN: i64 = 500;

#[derive(Debug, Default, Deserialize)]
pub(super) struct AuditQuery {
    teamspace: Option<String>,
    oid: Option<String>,
    source: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// A `datetime-local` value (taken as UTC) or an RFC 3339 time.
fn instant(label: &str, text: &str) -> Result<Millis, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(Millis(t.timestamp_millis()));
    }
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Ok(Millis(t.and_utc().timestamp_millis()));
        }
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(Millis(day.and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp_millis())));
    }
    Err(format!("{label}: `{text}` is not a time (use 2026-12-01T09:30, in UTC)"))
}

async fn audit_page(
    state: &ConsoleState,
    session: &super::session::Session,
    query: &AuditQuery,
) -> Result<Response, ConsoleError> {
    let bad = |m: String| ConsoleError::new(StatusCode::BAD_REQUEST, m).with(session);
    let teamspace_id = match given(&query.teamspace) {
        Some(name) => Some(super::teamspace(state, name, session)?.1),
        None => None,
    };
    let oid =
        given(&query.oid).map(|o| o.parse::<Oid>().map_err(|e| format!("Object ID: {e}"))).transpose().map_err(bad)?;
    let since = given(&query.since).map(|t| instant("From", t)).transpose().map_err(bad)?;
    let until = given(&query.until).map(|t| instant("Until", t)).transpose().map_err(bad)?;
    let filter =
        AuditFilter { teamspace_id, oid, since, until, source: given(&query.source).map(str::to_owned), limit: SHOWN };
    let mut events = state.api.store.audit(&filter).await.map_err(|e| ConsoleError::from(e).with(session))?;
    events.reverse();
    let content = html! {
        section {
            form method="get" action="/console/audit" role="search" {
                div.inline {
                    div {
                        label for="teamspace" { "Teamspace" }
                        select #teamspace name="teamspace" {
                            option value="" { "All" }
                            @for t in &state.api.config.teamspaces {
                                option value=(t.name.as_str()) selected[given(&query.teamspace) == Some(t.name.as_str())] { (t.name.as_str()) }
                            }
                        }
                    }
                    div { label for="audit-oid" { "Object ID" } input #audit-oid type="text" name="oid" value=(given(&query.oid).unwrap_or_default()); }
                    div { label for="audit-source" { "Source" } input #audit-source type="text" name="source" placeholder="manual, csv:hr, graph, scim" value=(given(&query.source).unwrap_or_default()); }
                    div { label for="since" { "From (UTC)" } input #since type="datetime-local" name="since" value=(given(&query.since).unwrap_or_default()); }
                    div { label for="until" { "Until (UTC)" } input #until type="datetime-local" name="until" value=(given(&query.until).unwrap_or_default()); }
                }
                button.secondary type="submit" { "Filter" }
            }
        }
        (wide_table("Audit events, newest first", &["When", "Teamspace", "Action", "Email", "Object ID", "Source", "Run"], html! {
            @for e in &events {
                tr {
                    td { (when(e.occurred_at)) }
                    td { (e.teamspace) }
                    td { (e.action) }
                    td { (e.email) @if let Some(previous) = e.previous_email.as_deref().filter(|p| *p != e.email) { " (was " (previous) ")" } }
                    td.mono { (e.oid) }
                    td { (e.source) }
                    td { (run_link(e.run_id.0)) }
                }
            }
        }))
        @if events.is_empty() { p { "No audit events match." } }
        @if events.len() as i64 == SHOWN { p.muted { "The newest " (SHOWN) " are shown; narrow the filters to see older ones." } }
    };
    Ok(respond(StatusCode::OK, layout::page("Audit trail", Some(session), None, content)))
}

pub(super) async fn page(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
    Query(query): Query<AuditQuery>,
) -> Result<Response, ConsoleError> {
    audit_page(&state, &session, &query).await
}
