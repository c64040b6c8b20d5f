//! The teamspaces overview, and one teamspace's members: search, keyset pages, "Add user" and
//! remove — the `manual` source, through [`crate::admin::members`] like `c7sync members`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{csrf_field, outcome_badge, outcome_word, page, run_link, teamspace_nav, when, wide_table, Notice};
use super::{respond, teamspace, ConsoleError, ConsoleState, NoFields, Posted, Signed};
use crate::admin::members::{self as manual, NewMember, Removed};
use crate::admin::teamspaces::{self, TeamspaceView};
use crate::domain::{Oid, SourceKind};
use crate::store::MemberRecord;

/// Members per page.
const PAGE_SIZE: i64 = 50;

pub(super) async fn overview(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
) -> Result<Response, ConsoleError> {
    let views = teamspaces::list(&state.api.store, &state.api.config.teamspaces)
        .await
        .map_err(|e| ConsoleError::from(e).with(&session))?;
    let content = html! {
        @if views.is_empty() {
            p { "No teamspace is configured. Add one to c7sync.toml and restart c7sync serve." }
        }
        @for view in &views { (teamspace_card(view)) }
    };
    Ok(respond(StatusCode::OK, page("Teamspaces", Some(&session), None, content)))
}

fn teamspace_card(view: &TeamspaceView) -> Markup {
    let t = &view.tenant;
    html! {
        section aria-labelledby={ "ts-" (view.name) } {
            h2 #{ "ts-" (view.name) } { a href={ "/console/teamspaces/" (view.name) } { (view.name) } }
            @if !view.held_runs.is_empty() {
                div.notice.problem.held-runs role="alert" {
                    strong { (view.held_runs.len()) " run(s) held for approval: " }
                    @for run in &view.held_runs { "run " (run_link(run.run_id.0)) " (" (run.source) ") " }
                }
            }
            dl {
                dt { "Members" } dd { (view.members) }
                dt { "Tenant" } dd.mono { (t.tenant_id) }
                dt { "Audience" } dd.mono { (t.audience) }
                dt { "Required scope" } dd { (t.required_scope) }
                dt { "Authority" } dd { (t.authority_url) }
                dt { "Removal guard" } dd { (t.max_removals) }
            }
            (wide_table(&format!("Sources of {}", view.name), &["Source", "Schedule", "Claims", "Last run", "Outcome", "When"], html! {
                @for source in &view.sources {
                    tr {
                        td { (source.source) }
                        td { (source.schedule.as_deref().unwrap_or("-")) }
                        td { (source.state.as_ref().map_or(0, |s| s.claims)) }
                        @match source.state.as_ref().and_then(|s| s.last_run_id.map(|id| (id, s))) {
                            Some((id, s)) => {
                                td { (run_link(id.0)) }
                                td { @if let Some(outcome) = s.last_outcome { (outcome_badge(outcome_word(outcome))) } }
                                td { @if let Some(at) = s.last_run_at { (when(at)) } }
                            }
                            None => { td { "never run" } td {} td {} }
                        }
                    }
                }
            }))
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct MembersQuery {
    q: Option<String>,
    after: Option<String>,
}

async fn members_page(
    state: &ConsoleState,
    session: &super::session::Session,
    name: &str,
    query: &MembersQuery,
    notice: Option<Notice>,
    status: StatusCode,
) -> Result<Response, ConsoleError> {
    let (_, id) = teamspace(state, name, session)?;
    let store = &state.api.store;
    let wrap = |e: crate::store::StoreError| ConsoleError::from(e).with(session);
    let after = match query.after.as_deref().filter(|a| !a.is_empty()) {
        Some(text) => Some(text.parse::<Oid>().map_err(|e| {
            ConsoleError::new(StatusCode::BAD_REQUEST, format!("The page cursor is not an object id: {e}"))
                .with(session)
        })?),
        None => None,
    };
    let search = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let members: Vec<MemberRecord> = match search {
        // An exact object id is one primary-key read.
        Some(text) => match text.parse::<Oid>() {
            Ok(oid) => store.member(id, oid).await.map_err(wrap)?.into_iter().collect(),
            Err(_) => store.search_members(id, text, after, PAGE_SIZE).await.map_err(wrap)?,
        },
        None => store.members_after(id, after, PAGE_SIZE).await.map_err(wrap)?,
    };
    let total = store.count_members(id).await.map_err(wrap)?;
    let next = (members.len() as i64 == PAGE_SIZE).then(|| members.last().map(|m| m.oid)).flatten();
    let manual = SourceKind::Manual.as_str();
    let content = html! {
        (teamspace_nav(name))
        section {
            h2 { "Add user" }
            form method="post" action={ "/console/teamspaces/" (name) "/members" } {
                (csrf_field(session))
                div.inline {
                    div { label for="email" { "Email" } input #email type="email" name="email" required autocomplete="off"; }
                    div { label for="oid" { "Object ID" } input #oid type="text" name="oid" required autocomplete="off" placeholder="00000000-0000-0000-0000-000000000000"; }
                    div { label for="display_name" { "Display name" } input #display_name type="text" name="display_name" autocomplete="off"; }
                }
                button type="submit" { "Add user" }
            }
        }
        section {
            h2 { "Members" }
            p.muted { (total) " member(s) in all." }
            form method="get" action={ "/console/teamspaces/" (name) } role="search" {
                label for="q" { "Search by email, name or object id" }
                input #q type="search" name="q" value=(search.unwrap_or_default());
                button.secondary type="submit" { "Search" }
            }
            (wide_table(&format!("Members of {name}"), &["Email", "Name", "Object ID", "Sources", ""], html! {
                @for member in &members {
                    tr {
                        td { (member.email) }
                        td { (member.display_name.as_deref().unwrap_or("")) }
                        td.mono { (member.oid) }
                        td { (member.sources.join(", ")) }
                        td {
                            @if member.sources.iter().any(|s| s == manual) {
                                form method="post" action={ "/console/teamspaces/" (name) "/members/" (member.oid) "/remove" } {
                                    (csrf_field(session))
                                    button.danger type="submit" aria-label={ "Remove " (member.email) } { "Remove" }
                                }
                            }
                        }
                    }
                }
            }))
            @if members.is_empty() { p { @if search.is_some() { "No member matches." } @else { "No members yet." } } }
            @if let Some(next) = next {
                p { a href={ "/console/teamspaces/" (name) "?after=" (next) @if let Some(q) = search { "&q=" (urlencode(q)) } } { "Next page" } }
            }
        }
    };
    Ok(respond(status, page(&format!("Teamspace {name}"), Some(session), notice.as_ref(), content)))
}

fn urlencode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

pub(super) async fn members(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
    Path(name): Path<String>,
    Query(query): Query<MembersQuery>,
) -> Result<Response, ConsoleError> {
    members_page(&state, &session, &name, &query, None, StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub(super) struct AddForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    oid: String,
    #[serde(default)]
    display_name: String,
}

pub(super) async fn add(
    State(state): State<ConsoleState>,
    Path(name): Path<String>,
    posted: Posted<AddForm>,
) -> Result<Response, ConsoleError> {
    let Posted { session, form } = posted;
    teamspace(&state, &name, &session)?;
    let display_name = Some(form.display_name.trim()).filter(|n| !n.is_empty());
    let member = NewMember { oid: form.oid.trim(), email: form.email.trim(), display_name };
    let (notice, status) = match manual::add(&state.api.reconciler, &name, member).await {
        Ok((oid, added, report)) => (
            Notice::Done(format!(
                "{} ({oid}) {} — run {}, {}.",
                form.email.trim(),
                added.describe(),
                report.run_id,
                super::layout::finished_word(report.outcome)
            )),
            StatusCode::OK,
        ),
        Err(crate::admin::AdminError::Invalid { field, message }) => {
            let label = match field {
                crate::admin::Field::Oid => "Object ID",
                crate::admin::Field::Email => "Email",
                _ => "Display name",
            };
            (Notice::Problem(format!("Not added: {label}: {message}")), StatusCode::BAD_REQUEST)
        }
        Err(other) => return Err(ConsoleError::from(other).with(&session)),
    };
    members_page(&state, &session, &name, &MembersQuery::default(), Some(notice), status).await
}

pub(super) async fn remove(
    State(state): State<ConsoleState>,
    Path((name, oid)): Path<(String, String)>,
    posted: Posted<NoFields>,
) -> Result<Response, ConsoleError> {
    let session = posted.session;
    let (_, id) = teamspace(&state, &name, &session)?;
    let (oid, removed, report) = manual::remove(&state.api.reconciler, &name, id, &oid)
        .await
        .map_err(|e| ConsoleError::from(e).with(&session))?;
    let what = match removed {
        Removed::Removed => "removed".to_owned(),
        Removed::ClaimDropped { kept_by } => format!("no longer claimed by hand; kept by {}", kept_by.join(", ")),
    };
    let notice = Notice::Done(format!(
        "{oid} {what} — run {}, {}.",
        report.run_id,
        super::layout::finished_word(report.outcome)
    ));
    members_page(&state, &session, &name, &MembersQuery::default(), Some(notice), StatusCode::OK).await
}
