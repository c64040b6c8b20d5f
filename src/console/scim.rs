//! SCIM for a teamspace: the Tenant URL to paste into Entra, its tokens, "Create token" (the
//! value shown once, with a copy button) and "Revoke".

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{csrf_field, page, teamspace_nav, when, wide_table, Notice};
use super::session::Session;
use super::{respond, teamspace, ConsoleError, ConsoleState, NoFields, Posted, Signed};
use crate::admin::scim_tokens::{self, CreatedToken};
use crate::admin::teamspaces::accepts_scim;

/// The Tenant URL: from `[server] public_url`, else from the address the browser used.
fn tenant_url(state: &ConsoleState, headers: &HeaderMap) -> String {
    if let Some(url) = state.api.scim_tenant_url() {
        return url;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("<your c7sync host>");
    let scheme = if state.secure { "https" } else { "http" };
    format!("{scheme}://{host}/scim/v2")
}

async fn scim_page(
    state: &ConsoleState,
    session: &Session,
    name: &str,
    headers: &HeaderMap,
    created: Option<CreatedToken>,
    notice: Option<Notice>,
) -> Result<Response, ConsoleError> {
    let (config, id) = teamspace(state, name, session)?;
    let tokens = state.api.store.list_scim_tokens(Some(id)).await.map_err(|e| ConsoleError::from(e).with(session))?;
    let url = tenant_url(state, headers);
    let content = html! {
        (teamspace_nav(name))
        @if !accepts_scim(config) {
            section { p { "This teamspace takes no SCIM pushes. Add a source with " code { "kind = \"scim\"" } " to it in c7sync.toml and restart c7sync serve." } }
        } @else {
            @if let Some(created) = &created { (new_token(created)) }
            section {
                h2 { "Entra provisioning" }
                p { "In the Entra admin centre, open the enterprise app, Provisioning, and set Provisioning Mode to Automatic. Paste:" }
                label for="tenant-url" { "Tenant URL" }
                div.secret {
                    input #tenant-url type="text" readonly value=(url);
                    button.secondary type="button" data-copy="tenant-url" { "Copy" }
                }
                p.muted { "and a Secret Token created below. Then press Test Connection in Entra." }
            }
            section {
                h2 { "Create token" }
                form method="post" action={ "/console/teamspaces/" (name) "/scim/tokens" } {
                    (csrf_field(session))
                    label for="label" { "Label" }
                    input #label type="text" name="label" placeholder="the Entra app's name";
                    button type="submit" { "Create token" }
                }
            }
            (wide_table("SCIM tokens", &["Id", "Label", "Created", "Last used", "State", ""], html! {
                @for token in &tokens {
                    tr {
                        td { (token.id) }
                        td { (token.label) }
                        td { (when(token.created_at)) }
                        td { (token.last_used_at.map(when).unwrap_or_else(|| "never".into())) }
                        td { @match token.revoked_at { Some(at) => { "revoked " (when(at)) } None => { "active" } } }
                        td {
                            @if token.revoked_at.is_none() {
                                form method="post" action={ "/console/teamspaces/" (name) "/scim/tokens/" (token.id) "/revoke" } {
                                    (csrf_field(session))
                                    button.danger type="submit" aria-label={ "Revoke token " (token.id) } { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }))
        }
    };
    Ok(respond(StatusCode::OK, page(&format!("SCIM for {name}"), Some(session), notice.as_ref(), content)))
}

fn new_token(created: &CreatedToken) -> Markup {
    html! {
        section.held-runs aria-labelledby="new-token-title" {
            h2 #new-token-title { "New token " (created.id) }
            p role="status" { strong { "This token is shown once." } " Copy it now and paste it as the Secret Token in Entra; c7sync keeps only its hash." }
            div.secret {
                input #new-token type="text" readonly value=(created.value) aria-label="New SCIM token";
                button type="button" data-copy="new-token" { "Copy" }
            }
        }
    }
}

pub(super) async fn page_route(
    State(state): State<ConsoleState>,
    Signed(session): Signed,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    scim_page(&state, &session, &name, &headers, None, None).await
}

#[derive(Debug, Deserialize)]
pub(super) struct CreateForm {
    #[serde(default)]
    label: String,
}

pub(super) async fn create(
    State(state): State<ConsoleState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    posted: Posted<CreateForm>,
) -> Result<Response, ConsoleError> {
    let Posted { session, form } = posted;
    let (config, id) = teamspace(&state, &name, &session)?;
    let created = scim_tokens::create(&state.api.store, config, id, form.label.trim())
        .await
        .map_err(|e| ConsoleError::from(e).with(&session))?;
    tracing::info!(teamspace = name, token_id = created.id, "SCIM token created in the console");
    let mut response = scim_page(&state, &session, &name, &headers, Some(created), None).await?;
    // The page holds a secret: no history entry a back button could bring it back from.
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    Ok(response)
}

pub(super) async fn revoke(
    State(state): State<ConsoleState>,
    Path((name, token)): Path<(String, i64)>,
    headers: HeaderMap,
    posted: Posted<NoFields>,
) -> Result<Response, ConsoleError> {
    let session = posted.session;
    let (_, id) = teamspace(&state, &name, &session)?;
    scim_tokens::revoke(&state.api.store, &name, id, token).await.map_err(|e| ConsoleError::from(e).with(&session))?;
    tracing::info!(teamspace = name, token_id = token, "SCIM token revoked in the console");
    let notice = Notice::Done(format!("Token {token} revoked: Entra's requests with it are refused from now on."));
    scim_page(&state, &session, &name, &headers, None, Some(notice)).await
}
