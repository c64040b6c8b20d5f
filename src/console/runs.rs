//! Runs: the list, one run with its plan or changes, and "Approve" for a run a guard holds.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::layout::{csrf_field, finished_word, outcome_badge, outcome_word, page, run_link, when, wide_table, Notice};
use super::session::Session;
use super::{respond, ConsoleError, ConsoleState, NoFields, Posted, Signed};
use crate::admin::runs::{self, ChangesFrom};
use crate::domain::RunId;
use crate::store::{MemberEffect, PlannedChange};

/// Runs per list page, and changes shown on a run's page.
const SHOWN: i64 = 200;

#[derive(Debug, Deserialize)]
pub(super) struct RunsQuery {
    teamspace: Option<String>,
}

pub(super) async fn list(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
    Query(query): Query<RunsQuery>,
) -> Result<Response, ConsoleError> {
    let teamspace = query.teamspace.as_deref().filter(|t| !t.is_empty());
    let id = match teamspace {
        Some(name) => Some(super::teamspace(&state, name, &session)?.1),
        None => None,
    };
    let runs = state.api.store.list_runs(id, SHOWN).await.map_err(|e| ConsoleError::from(e).with(&session))?;
    let content = html! {
        (wide_table("Runs, newest first", &["Run", "Teamspace", "Source", "Trigger", "Outcome", "Added", "Removed", "Updated", "Started"], html! {
            @for run in &runs {
                tr {
                    td { (run_link(run.run_id.0)) }
                    td { (run.teamspace) }
                    td { (run.source) }
                    td { (run.trigger) }
                    td { (outcome_badge(outcome_word(run.outcome))) @if run.approved_by_run_id.is_some() { " (approved)" } }
                    td { (run.counts.added) } td { (run.counts.removed) } td { (run.counts.updated) }
                    td { (when(run.started_at)) }
                }
            }
        }))
        @if runs.is_empty() { p { "No runs yet." } }
    };
    let title = match teamspace {
        Some(name) => format!("Runs of {name}"),
        None => "Runs".to_owned(),
    };
    Ok(respond(StatusCode::OK, page(&title, Some(&session), None, content)))
}

async fn run_page(
    state: &ConsoleState,
    session: &Session,
    run_id: RunId,
    notice: Option<Notice>,
) -> Result<Response, ConsoleError> {
    let store = &state.api.store;
    let wrap = |e: crate::store::StoreError| ConsoleError::from(e).with(session);
    let (run, _) = store.run(run_id).await.map_err(wrap)?;
    let (changes, total, from) = runs::changes(store, &run, SHOWN).await.map_err(wrap)?;
    let held = runs::is_held(&run);
    let removals: Vec<&PlannedChange> = changes.iter().filter(|c| c.member == MemberEffect::Remove).collect();
    let c = run.counts;
    let content = html! {
        section {
            p { "Outcome: " (outcome_badge(outcome_word(run.outcome))) }
            dl {
                dt { "Teamspace" } dd { a href={ "/console/teamspaces/" (run.teamspace) } { (run.teamspace) } }
                dt { "Source" } dd { (run.source) }
                dt { "Trigger" } dd { (run.trigger) }
                dt { "Input" } dd { (run.input) }
                dt { "Started" } dd { (when(run.started_at)) }
                dt { "Finished" } dd { (run.finished_at.map(when).unwrap_or_else(|| "still running".into())) }
                dt { "Added" } dd { (c.added) }
                dt { "Removed" } dd { (c.removed) }
                dt { "Updated" } dd { (c.updated) }
                dt { "Unchanged" } dd { (c.unchanged) }
                @if let Some(reason) = &run.reason { dt { "Reason" } dd { (reason) } }
                @if let Some(by) = run.approved_by_run_id { dt { "Approved by" } dd { "run " (run_link(by.0)) } }
                @if let Some(held) = run.approves_run_id { dt { "Approves" } dd { "held run " (run_link(held.0)) } }
            }
        }
        @if held {
            section.held-runs aria-labelledby="held-title" {
                h2 #held-title { "Held for approval" }
                p { "A guard held this run back; nothing has changed. Approving applies exactly this plan (if the source has not changed since)." }
                @if !removals.is_empty() {
                    (wide_table("Who would be removed", &["Email", "Name", "Object ID"], html! {
                        @for change in &removals {
                            tr { td { (change.email) } td { (change.display_name.as_deref().unwrap_or("")) } td.mono { (change.oid) } }
                        }
                    }))
                }
                form method="post" action={ "/console/runs/" (run.run_id.0) "/approve" } {
                    (csrf_field(session))
                    button type="submit" { "Approve" }
                }
            }
        }
        @if !changes.is_empty() {
            (wide_table(if from == ChangesFrom::Audit { "Changes applied" } else { "Planned changes" }, &["Change", "Email", "Name", "Object ID", "Was"], html! {
                @for change in &changes {
                    tr {
                        td { (change.member) }
                        td { (change.email) }
                        td { (change.display_name.as_deref().unwrap_or("")) }
                        td.mono { (change.oid) }
                        td { (change.previous_email.as_deref().filter(|p| *p != change.email).unwrap_or("")) }
                    }
                }
            }))
            @if total > changes.len() as u64 { p { "… and " (total - changes.len() as u64) " more (" code { "c7sync runs show " (run.run_id.0) " --limit 0" } ")." } }
        }
    };
    Ok(respond(StatusCode::OK, page(&format!("Run {}", run.run_id.0), Some(session), notice.as_ref(), content)))
}

pub(super) async fn show(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
    Path(run): Path<i64>,
) -> Result<Response, ConsoleError> {
    run_page(&state, &session, RunId(run), None).await
}

pub(super) async fn approve(
    State(state): State<ConsoleState>,
    Path(run): Path<i64>,
    posted: Posted<NoFields>,
) -> Result<Response, ConsoleError> {
    let session = posted.session;
    let report = state
        .api
        .reconciler
        .approve(RunId(run))
        .await
        .map_err(|e| ConsoleError::from(crate::api::ApiError::from(e)).with(&session))?;
    let notice = Notice::Done(format!(
        "Run {run} approved: run {} {} (added {}, removed {}, updated {}).",
        report.run_id,
        finished_word(report.outcome),
        report.counts.added,
        report.counts.removed,
        report.counts.updated
    ));
    run_page(&state, &session, report.run_id, Some(notice)).await
}
