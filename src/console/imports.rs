//! "Import CSV": upload a file, choose merge or replace, see the dry run's plan, then "Apply" —
//! the same run `c7sync import` makes, through [`crate::admin::imports`].

use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};

use super::layout::{csrf_field, finished_word, outcome_badge, page, run_link, teamspace_nav, wide_table, Notice};
use super::session::Session;
use super::{check_csrf, respond, teamspace, ConsoleError, ConsoleState, Signed};
use crate::admin::imports::{self, ImportRequest};
use crate::config::CsvMode;
use crate::plan::preview::plan_preview;
use crate::reconcile::RunOptions;
use crate::store::Outcome;
use crate::sync::csv::ImportOutcome;

/// How many invalid rows the page lists.
const INVALID_ROWS_SHOWN: usize = 100;

fn import_page(name: &str, session: &Session, result: Option<Markup>) -> Markup {
    html! {
        (teamspace_nav(name))
        section {
            form #import-form method="post" action={ "/console/teamspaces/" (name) "/import" } enctype="multipart/form-data"
                hx-post={ "/console/teamspaces/" (name) "/import" } hx-encoding="multipart/form-data"
                hx-target="#result" hx-select="#result" hx-swap="outerHTML" {
                (csrf_field(session))
                label for="file" { "CSV file" }
                input #file type="file" name="file" accept=".csv,.tsv,text/csv,text/tab-separated-values" required;
                p.muted { "Our format (email,oid[,display_name]), the Entra admin centre's \"Download users\" file, or az output with an email/oid header." }
                fieldset {
                    legend { "Mode" }
                    label { input type="radio" name="mode" value="merge" checked; " Merge: add and update only" }
                    label { input type="radio" name="mode" value="replace"; " Replace: the file is this source's complete list (others are removed)" }
                }
                label for="source" { "Source id" }
                input #source type="text" name="source" value="csv" required;
                label { input type="checkbox" name="skip_invalid" value="true"; " Apply the valid rows despite invalid ones (then nobody is removed)" }
                div.inline {
                    button.secondary type="submit" name="action" value="dry_run" { "Dry run" }
                    button type="submit" name="action" value="apply" { "Apply" }
                }
                progress #upload-progress hidden value="0" max="1" aria-label="Upload progress" {}
                p #upload-status role="status" aria-live="polite" {}
            }
        }
        @match result {
            Some(result) => { (result) }
            None => { div #result {} }
        }
    }
}

pub(super) async fn form(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
    Path(name): Path<String>,
) -> Result<Response, ConsoleError> {
    teamspace(&state, &name, &session)?;
    Ok(respond(
        StatusCode::OK,
        page(&format!("Import CSV into {name}"), Some(&session), None, import_page(&name, &session, None)),
    ))
}

struct Upload {
    csrf: String,
    mode: CsvMode,
    source: String,
    skip_invalid: bool,
    dry_run: bool,
    file: Option<(String, axum::body::Bytes)>,
}

async fn read_form(state: &ConsoleState, session: &Session, mut multipart: Multipart) -> Result<Upload, ConsoleError> {
    let bad = |message: String| ConsoleError::new(StatusCode::BAD_REQUEST, message).with(session);
    let mut upload = Upload {
        csrf: String::new(),
        mode: CsvMode::Merge,
        source: "csv".into(),
        skip_invalid: false,
        dry_run: true,
        file: None,
    };
    while let Some(field) =
        multipart.next_field().await.map_err(|e| bad(format!("The upload did not arrive whole: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            // Checked before the file is read: a forged form never costs the upload.
            check_csrf(state, session, &upload.csrf)?;
            let file_name = field.file_name().unwrap_or("upload").to_owned();
            let bytes = field.bytes().await.map_err(|e| bad(format!("The file did not arrive whole: {e}")))?;
            upload.file = Some((file_name, bytes));
            continue;
        }
        let value = field.text().await.map_err(|e| bad(format!("The field {name} is not text: {e}")))?;
        match name.as_str() {
            "csrf" => upload.csrf = value,
            "mode" if value == "replace" => upload.mode = CsvMode::Replace,
            "mode" => upload.mode = CsvMode::Merge,
            "source" => upload.source = value.trim().to_owned(),
            "skip_invalid" => upload.skip_invalid = value == "true",
            "action" => upload.dry_run = value != "apply",
            _ => {}
        }
    }
    check_csrf(state, session, &upload.csrf)?;
    Ok(upload)
}

pub(super) async fn submit(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
    Path(name): Path<String>,
    multipart: Multipart,
) -> Result<Response, ConsoleError> {
    let (config, _) = teamspace(&state, &name, &session)?;
    let upload = read_form(&state, &session, multipart).await?;
    let title = format!("Import CSV into {name}");
    let Some((file_name, bytes)) = upload.file else {
        return Err(ConsoleError::new(StatusCode::BAD_REQUEST, "Choose a CSV file to upload.").with(&session));
    };
    let request = ImportRequest {
        teamspace: &name,
        source: &upload.source,
        mode: upload.mode,
        options: RunOptions { dry_run: upload.dry_run, allow_mass_removal: false },
        skip_invalid: upload.skip_invalid,
        origin: serde_json::json!({ "file": file_name, "bytes": bytes.len(), "via": "console" }),
    };
    let outcome = match imports::read_upload(bytes, config.tenant_id, file_name.ends_with(".tsv")).await {
        Ok(contents) => imports::run(&state.api.reconciler, &request, contents).await,
        Err(error) => Err(error),
    };
    let (status, result) = match outcome {
        Ok(outcome) => (
            if outcome.rejected_for_invalid_rows { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK },
            report(&outcome, &file_name),
        ),
        Err(error) => {
            let error = ConsoleError::from(error);
            (error.status, html! { div #result { p.notice.problem role="alert" { "Not imported: " (error.message) } } })
        }
    };
    let body = page(&title, Some(&session), None::<&Notice>, import_page(&name, &session, Some(result)));
    Ok(respond(status, body))
}

fn report(outcome: &ImportOutcome, file_name: &str) -> Markup {
    let r = &outcome.report;
    let s = &outcome.summary;
    let word = if outcome.rejected_for_invalid_rows { "failed" } else { finished_word(r.outcome) };
    let preview = plan_preview(&r.plan.changes);
    html! {
        section #result aria-labelledby="result-title" {
            h2 #result-title { "Run " (run_link(r.run_id.0)) ": " (outcome_badge(word)) }
            p role="status" {
                @match (r.outcome, outcome.rejected_for_invalid_rows) {
                    (_, true) => { "Nothing was applied: the file has invalid rows. Fix them, or tick \"Apply the valid rows\"." }
                    (Outcome::DryRun, _) => { "Dry run of " (file_name) ": nothing changed yet. Check the plan, then press Apply." }
                    (Outcome::Applied, _) => { (file_name) " was applied." }
                    (Outcome::Aborted, _) => { "Held by a guard: nothing changed. " (r.reason.as_deref().unwrap_or("")) " Review and approve it on the run's page." }
                    (Outcome::Failed, _) => { "The run failed: " (r.reason.as_deref().unwrap_or("see the c7sync log")) }
                }
            }
            dl {
                dt { "Rows read" } dd { (s.rows) }
                dt { "Members in the file" } dd { (s.valid) }
                dt { "Duplicates collapsed" } dd { (s.duplicates) }
                dt { "Disabled accounts skipped" } dd { (s.disabled) }
                dt { "Invalid rows" } dd { (s.invalid_rows) }
                @let done = r.outcome == Outcome::Applied;
                dt { (if done { "Added" } else { "Would add" }) } dd { (r.counts.added) }
                dt { (if done { "Removed" } else { "Would remove" }) } dd { (r.counts.removed) }
                dt { (if done { "Updated" } else { "Would update" }) } dd { (r.counts.updated) }
                dt { "Unchanged" } dd { (r.counts.unchanged) }
            }
            @if outcome.mode != outcome.applied_mode {
                p { "Replace was applied as merge: a file with invalid rows is incomplete, so nobody is removed." }
            }
            @if !outcome.invalid.is_empty() {
                (wide_table("Invalid rows", &["Line", "Field", "Problem"], html! {
                    @for row in outcome.invalid.iter().take(INVALID_ROWS_SHOWN) {
                        tr { td { (row.line) } td { (row.field) } td { (row.message) } }
                    }
                }))
                @if outcome.invalid.len() > INVALID_ROWS_SHOWN {
                    p { "… and " (outcome.invalid.len() - INVALID_ROWS_SHOWN) " more." }
                }
            }
            @if !preview.is_empty() {
                (wide_table("First changes", &["Change", "Email", "Name", "Object ID", "Was"], html! {
                    @for row in &preview {
                        tr { td { (row.action) } td { (row.email) } td { (row.display_name.unwrap_or("")) } td.mono { (row.oid) } td { (row.previous_email.unwrap_or("")) } }
                    }
                }))
            }
        }
    }
}
