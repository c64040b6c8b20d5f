//! The page every console view sits in, and the words and small pieces views share.

use maud::{html, Markup, DOCTYPE};

use super::session::Session;
use crate::clock::Millis;
use crate::store::{Outcome, RunStatus};

/// A message shown above a page's content, after an action.
pub enum Notice {
    /// It worked.
    Done(String),
    /// It did not; the text says why and what to do.
    Problem(String),
}

/// A whole page: head, navigation (with the sign-out form when signed in) and `content`.
pub fn page(title: &str, session: Option<&Session>, notice: Option<&Notice>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                // The CSP allows no inline styles or eval; htmx needs neither with these. Refusals
                // (4xx) are pages that say why, so they are shown like any answer.
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"responseHandling":[{"code":"204","swap":false},{"code":"...","swap":true}]}"#;
                title { (title) " · c7sync" }
                link rel="icon" href="/console/assets/favicon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/htmx.min.js" defer {}
                script src="/console/assets/console.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/console" { "c7sync" }
                    @if let Some(session) = session {
                        nav aria-label="Main" {
                            a href="/console" { "Teamspaces" }
                            a href="/console/runs" { "Runs" }
                            a href="/console/audit" { "Audit" }
                            a href="/console/delivery" { "Delivery" }
                        }
                        form.sign-out method="post" action="/console/sign-out" {
                            (csrf_field(session))
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    @match notice {
                        Some(Notice::Done(text)) => { p.notice.done role="status" { (text) } }
                        Some(Notice::Problem(text)) => { p.notice.problem role="alert" { (text) } }
                        None => {}
                    }
                    (content)
                }
            }
        }
    }
}

/// The hidden CSRF field of a state-changing form.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf()); }
}

/// A run's outcome in the words people use: a guard's abort is "held" (waiting for approval).
pub fn outcome_word(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Running => "running",
        RunStatus::Finished(outcome) => finished_word(outcome),
    }
}

/// A finished run's outcome in words.
pub fn finished_word(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Applied => "applied",
        Outcome::DryRun => "dry run",
        Outcome::Aborted => "held",
        Outcome::Failed => "failed",
    }
}

/// An outcome word marked up so that held and failed runs stand out.
pub fn outcome_badge(word: &str) -> Markup {
    html! { span class={ "badge " (word.replace(' ', "-")) } { (word) } }
}

/// A time as people read it (UTC, to the second).
pub fn when(at: Millis) -> String {
    match chrono::DateTime::<chrono::Utc>::from_timestamp_millis(at.0) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        None => at.0.to_string(),
    }
}

/// A link to a run, named by its id.
pub fn run_link(id: i64) -> Markup {
    html! { a href={ "/console/runs/" (id) } { (id) } }
}

/// A table that scrolls sideways on a narrow screen instead of overflowing it.
pub fn wide_table(caption: &str, head: &[&str], rows: Markup) -> Markup {
    html! {
        div.scroll {
            table {
                caption { (caption) }
                thead { tr { @for h in head { th scope="col" { (h) } } } }
                tbody { (rows) }
            }
        }
    }
}

/// The links of one teamspace's pages.
pub fn teamspace_nav(teamspace: &str) -> Markup {
    html! {
        nav.sub aria-label={ "Teamspace " (teamspace) } {
            a href={ "/console/teamspaces/" (teamspace) } { "Members" }
            a href={ "/console/teamspaces/" (teamspace) "/import" } { "Import CSV" }
            a href={ "/console/teamspaces/" (teamspace) "/scim" } { "SCIM" }
            a href={ "/console/runs?teamspace=" (teamspace) } { "Runs of " (teamspace) }
            a href={ "/console/audit?teamspace=" (teamspace) } { "Audit of " (teamspace) }
        }
    }
}
