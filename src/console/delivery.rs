//! Delivery to Context7: events waiting and events given up on, with "Retry".

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};

use super::layout::{csrf_field, page, run_link, when, wide_table, Notice};
use super::session::Session;
use super::{respond, ConsoleError, ConsoleState, NoFields, Posted, Signed};
use crate::store::{DeliveryStatus, EventFilter, EventState};

/// Events listed per state.
const SHOWN: i64 = 200;

fn events_table(caption: &str, events: &[EventState], session: &Session, retry: bool) -> Markup {
    wide_table(
        caption,
        &["Event", "Teamspace", "Kind", "Email", "Object ID", "Run", "Attempts", "Last error", ""],
        html! {
            @for e in events {
                tr {
                    td { (e.event.id) }
                    td { (e.event.teamspace) }
                    td { (e.event.kind) }
                    td { (e.event.email) }
                    td.mono { (e.event.oid) }
                    td { (run_link(e.event.run_id)) }
                    td { (e.attempts) }
                    td { (e.last_error.as_deref().unwrap_or("")) }
                    td {
                        @if retry {
                            form method="post" action={ "/console/delivery/" (e.event.id) "/retry" } {
                                (csrf_field(session))
                                button.secondary type="submit" aria-label={ "Retry event " (e.event.id) } { "Retry" }
                            }
                        }
                    }
                }
            }
        },
    )
}

async fn delivery_page(
    state: &ConsoleState,
    session: &Session,
    notice: Option<Notice>,
) -> Result<Response, ConsoleError> {
    let store = &state.api.store;
    let wrap = |e: crate::store::StoreError| ConsoleError::from(e).with(session);
    let of = |status| EventFilter { teamspace_id: None, status: Some(status), after: None, limit: SHOWN };
    let pending = store.list_events(&of(DeliveryStatus::Pending)).await.map_err(wrap)?;
    let dead = store.list_events(&of(DeliveryStatus::Dead)).await.map_err(wrap)?;
    let (backlog, oldest) = store.outbox_backlog().await.map_err(wrap)?;
    let content = html! {
        section {
            @if state.api.config.delivery.is_none() {
                p { "No webhook is configured ([delivery] in c7sync.toml): events are kept for " code { "/v1" } " readers and not pushed." }
            }
            p { (backlog) " event(s) waiting" @if let Some(at) = oldest { ", the oldest from " (when(at)) } "; " (dead.len()) " given up on." }
        }
        h2 { "Given up on" }
        @if dead.is_empty() { p { "None." } } @else { (events_table("Dead events, oldest first", &dead, session, true)) }
        h2 { "Waiting" }
        @if pending.is_empty() { p { "None." } } @else { (events_table("Pending events, oldest first", &pending, session, false)) }
    };
    Ok(respond(StatusCode::OK, page("Delivery", Some(session), notice.as_ref(), content)))
}

pub(super) async fn page_route(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
) -> Result<Response, ConsoleError> {
    delivery_page(&state, &session, None).await
}

pub(super) async fn retry(
    State(state): State<ConsoleState>,
    Path(event): Path<i64>,
    posted: Posted<NoFields>,
) -> Result<Response, ConsoleError> {
    let session = posted.session;
    state.api.store.retry_event(event).await.map_err(|e| ConsoleError::from(e).with(&session))?;
    delivery_page(&state, &session, Some(Notice::Done(format!("Event {event} is back in line for delivery.")))).await
}
