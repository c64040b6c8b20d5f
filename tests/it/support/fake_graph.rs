//! An in-process stand-in for Microsoft Graph and Entra's token endpoint on 127.0.0.1, close
//! enough to the real services to catch what a client gets wrong:
//! - `POST /{tenant}/oauth2/v2.0/token`: the client-credentials grant, checking client id,
//!   secret, scope and tenant, with AADSTS-style errors.
//! - `GET /v1.0/groups/{id}/transitiveMembers`: nested groups flattened, the nested group
//!   objects and non-user members listed too (as Graph does), `$top` capped, absolute
//!   `@odata.nextLink`s with an opaque `$skiptoken`, bearer tokens checked.
//! - Faults scripted per (group, page): 429/503 with `Retry-After`, failures for good,
//!   malformed bodies, an expired token, slow pages.
//!
//! - Delta queries (`groups/delta`, `users/delta`) and look-ups of users by id: see
//!   [`delta`].
//!
//! Also compiled into `examples/fake_graph.rs` for the benchmark.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

#[path = "fake_graph_delta.rs"]
mod delta;

type Shared = Arc<Mutex<Directory>>;

/// A user object.
#[derive(Debug, Clone)]
pub struct User {
    pub id: uuid::Uuid,
    pub mail: Option<String>,
    pub upn: String,
    pub display_name: Option<String>,
    pub enabled: bool,
    pub guest: bool,
}

impl User {
    /// An enabled member user `n` with mail `user{n}@contoso.com`.
    pub fn numbered(n: u128) -> User {
        User {
            id: uuid::Uuid::from_u128(0x6a00_0000_0000_4000_8000_0000_0000_0000 + n),
            mail: Some(format!("user{n}@contoso.com")),
            upn: format!("user{n}@contoso.onmicrosoft.com"),
            display_name: Some(format!("User {n}")),
            enabled: true,
            guest: false,
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "@odata.type": "#microsoft.graph.user",
            "id": self.id.to_string(),
            "mail": self.mail,
            "userPrincipalName": self.upn,
            "displayName": self.display_name,
            "accountEnabled": self.enabled,
            "userType": if self.guest { "Guest" } else { "Member" },
        })
    }
}

/// A member of a group.
#[derive(Debug, Clone)]
pub enum Member {
    User(User),
    /// A nested group (by id; its members are listed transitively).
    Group(uuid::Uuid),
    Device(uuid::Uuid),
    ServicePrincipal(uuid::Uuid),
}

/// What to do instead of (or before) answering a page.
#[derive(Debug, Clone)]
pub enum Fault {
    /// 429 with `Retry-After: secs`.
    Throttle { retry_after: u32 },
    /// 503, with `Retry-After` when given.
    Unavailable { retry_after: Option<u32> },
    /// 200 with a body that is not a page.
    Malformed,
    /// Any status with Graph's error body.
    Status(u16),
    /// 401: every token issued so far has expired.
    ExpireTokens,
    /// Answer normally after this delay.
    Delay(Duration),
}

/// Faults for one page: `once` are used up in order; `always` then applies to every request.
#[derive(Debug, Clone, Default)]
struct PageFaults {
    once: VecDeque<Fault>,
    always: Option<Fault>,
}

#[derive(Debug, Default)]
pub struct Counters {
    /// Token requests answered with a token.
    pub tokens_issued: u32,
    /// Token requests refused.
    pub tokens_refused: u32,
    /// Member requests by (group, page), including refused ones.
    pub page_requests: HashMap<(uuid::Uuid, u32), u32>,
    /// Every member request's path and query.
    pub requests: Vec<String>,
    /// The most member requests in flight at once.
    pub max_in_flight: u32,
    in_flight: u32,
    /// Scopes asked for.
    pub scopes: HashSet<String>,
}

#[derive(Debug)]
struct Directory {
    tenant: String,
    client_id: String,
    secret: String,
    groups: HashMap<uuid::Uuid, Vec<Member>>,
    forbidden: HashSet<uuid::Uuid>,
    page_cap: usize,
    faults: HashMap<(uuid::Uuid, u32), PageFaults>,
    valid_tokens: HashSet<String>,
    next_link_host: Option<String>,
    counters: Counters,
    /// Flattened listings, rebuilt after a membership change: the benchmark pages through
    /// 100,000 members and must not pay for flattening on every page.
    listings: HashMap<uuid::Uuid, Arc<Vec<Value>>>,
    /// Every user ever put in a group, as last set.
    users: HashMap<uuid::Uuid, User>,
    /// The change log and tokens behind delta queries.
    delta: delta::DeltaLog,
    /// Faults for the next delta and look-up requests, in order.
    delta_faults: VecDeque<Fault>,
}

/// The fake; dropping it stops the server.
pub struct FakeGraph {
    pub addr: SocketAddr,
    directory: Arc<Mutex<Directory>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGraph {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeGraph {
    /// A fake for `tenant`, accepting `client_id` with `secret`; pages hold at most `page_cap`
    /// objects (Graph's cap is 999).
    pub async fn start(tenant: &str, client_id: &str, secret: &str, page_cap: usize) -> FakeGraph {
        let directory = Arc::new(Mutex::new(Directory {
            tenant: tenant.to_owned(),
            client_id: client_id.to_owned(),
            secret: secret.to_owned(),
            groups: HashMap::new(),
            forbidden: HashSet::new(),
            page_cap,
            faults: HashMap::new(),
            valid_tokens: HashSet::new(),
            next_link_host: None,
            counters: Counters::default(),
            listings: HashMap::new(),
            users: HashMap::new(),
            delta: delta::DeltaLog::default(),
            delta_faults: VecDeque::new(),
        }));
        let app = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/v1.0/groups/{group}/transitiveMembers", get(members))
            .route("/v1.0/groups/delta", get(delta::groups_delta))
            .route("/v1.0/users/delta", get(delta::users_delta))
            .route("/v1.0/users", get(delta::users_by_id))
            .with_state(directory.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeGraph { addr, directory, server }
    }

    /// `http://127.0.0.1:PORT`, for both `graph_url` and `authority_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Directory) -> T) -> T {
        f(&mut self.directory.lock().unwrap())
    }

    /// Sets a group's direct members; delta queries report the difference.
    pub fn set_group(&self, group: uuid::Uuid, members: Vec<Member>) {
        self.with(|d| {
            let old = d.groups.get(&group).cloned().unwrap_or_default();
            d.log_membership(group, &old, &members);
            d.groups.insert(group, members);
            d.listings.clear();
        });
    }

    /// A group's direct members now.
    pub fn group(&self, group: uuid::Uuid) -> Vec<Member> {
        self.with(|d| d.groups.get(&group).cloned().unwrap_or_default())
    }

    /// The next delta and look-up requests meet `faults`, in order.
    pub fn fault_delta_once(&self, faults: Vec<Fault>) {
        self.with(|d| d.delta_faults.extend(faults));
    }

    /// Listing this group answers 403.
    pub fn forbid(&self, group: uuid::Uuid) {
        self.with(|d| d.forbidden.insert(group));
    }

    /// The next requests for this page meet `faults`, in order.
    pub fn fault_once(&self, group: uuid::Uuid, page: u32, faults: Vec<Fault>) {
        self.with(|d| d.faults.entry((group, page)).or_default().once.extend(faults));
    }

    /// Every request for this page meets `fault` (after any one-off faults).
    pub fn fault_always(&self, group: uuid::Uuid, page: u32, fault: Fault) {
        self.with(|d| d.faults.entry((group, page)).or_default().always = Some(fault));
    }

    /// Removes every scripted fault.
    pub fn clear_faults(&self) {
        self.with(|d| d.faults.clear());
    }

    /// Next links point at this `host:port` instead of the fake's own.
    pub fn send_next_links_to(&self, host: &str) {
        self.with(|d| d.next_link_host = Some(host.to_owned()));
    }

    /// Reads the counters.
    pub fn counters<T>(&self, f: impl FnOnce(&Counters) -> T) -> T {
        self.with(|d| f(&d.counters))
    }

    /// Member requests for (group, page).
    pub fn requests_for(&self, group: uuid::Uuid, page: u32) -> u32 {
        self.counters(|c| c.page_requests.get(&(group, page)).copied().unwrap_or(0))
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, axum::Json(json!({ "error": error, "error_description": description, "error_codes": [7000215] })))
        .into_response()
}

async fn token(
    State(directory): State<Shared>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut d = directory.lock().unwrap();
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    d.counters.scopes.insert(field("scope").to_owned());
    if tenant != d.tenant {
        d.counters.tokens_refused += 1;
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("AADSTS90002: Tenant '{tenant}' not found.\r\nTrace ID: 0"),
        );
    }
    if field("grant_type") != "client_credentials" {
        d.counters.tokens_refused += 1;
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "AADSTS70003: unsupported grant type");
    }
    if field("client_id") != d.client_id {
        d.counters.tokens_refused += 1;
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "AADSTS700016: Application not found in the directory.",
        );
    }
    if field("client_secret") != d.secret {
        d.counters.tokens_refused += 1;
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1",
        );
    }
    if !field("scope").ends_with("/.default") {
        d.counters.tokens_refused += 1;
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", "AADSTS1002012: The provided scope is invalid");
    }
    d.counters.tokens_issued += 1;
    let access_token = format!("fake-token-{}-{}", d.counters.tokens_issued, uuid::Uuid::new_v4());
    d.valid_tokens.insert(access_token.clone());
    axum::Json(json!({
        "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": access_token
    }))
    .into_response()
}

fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "error": { "code": code, "message": message, "innerError": { "request-id": "0" } } });
    (status, axum::Json(body)).into_response()
}

/// Every member object of `group`, nested groups flattened, each object once.
fn transitive(groups: &HashMap<uuid::Uuid, Vec<Member>>, group: uuid::Uuid) -> Vec<Value> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![group];
    let mut visited = HashSet::new();
    while let Some(g) = stack.pop() {
        if !visited.insert(g) {
            continue;
        }
        for member in groups.get(&g).into_iter().flatten() {
            let (id, object) = match member {
                Member::User(user) => (user.id, user.to_json()),
                Member::Group(id) => {
                    stack.push(*id);
                    (*id, json!({ "@odata.type": "#microsoft.graph.group", "id": id.to_string() }))
                }
                Member::Device(id) => (*id, json!({ "@odata.type": "#microsoft.graph.device", "id": id.to_string() })),
                Member::ServicePrincipal(id) => {
                    (*id, json!({ "@odata.type": "#microsoft.graph.servicePrincipal", "id": id.to_string() }))
                }
            };
            if seen.insert(id) {
                out.push(object);
            }
        }
    }
    out
}

struct InFlight(Arc<Mutex<Directory>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.lock().unwrap().counters.in_flight -= 1;
    }
}

async fn members(
    State(directory): State<Shared>,
    Path(group): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let Ok(group) = group.parse::<uuid::Uuid>() else {
        return graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", "Invalid object identifier");
    };
    let requested_top = query.get("$top").and_then(|t| t.parse::<usize>().ok()).unwrap_or(100);
    let offset: usize =
        query.get("$skiptoken").and_then(|t| t.strip_prefix("RFNwdAIAAQAAA")).and_then(|t| t.parse().ok()).unwrap_or(0);
    let fault = {
        let mut d = directory.lock().unwrap();
        let top = requested_top.min(d.page_cap).max(1);
        let page = (offset / top) as u32 + 1;
        d.counters.requests.push(uri.to_string());
        *d.counters.page_requests.entry((group, page)).or_default() += 1;
        d.counters.in_flight += 1;
        d.counters.max_in_flight = d.counters.max_in_flight.max(d.counters.in_flight);
        let faults = d.faults.get_mut(&(group, page));
        faults.and_then(|f| f.once.pop_front().or_else(|| f.always.clone()))
    };
    let _in_flight = InFlight(directory.clone());
    if let Some(Fault::Delay(delay)) = &fault {
        tokio::time::sleep(*delay).await;
    }
    let mut d = directory.lock().unwrap();
    let token = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if !token.is_some_and(|t| d.valid_tokens.contains(t)) {
        return graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token has expired or is not yet valid.",
        );
    }
    if let Some(response) = fault_response(&mut d, fault) {
        return response;
    }
    if d.forbidden.contains(&group) {
        return graph_error(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        );
    }
    if !d.groups.contains_key(&group) {
        return graph_error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            &format!(
                "Resource '{group}' does not exist or one of its queried reference-property objects are not present."
            ),
        );
    }
    let top = requested_top.min(d.page_cap).max(1);
    let all = match d.listings.get(&group) {
        Some(all) => all.clone(),
        None => {
            let all = Arc::new(transitive(&d.groups, group));
            d.listings.insert(group, all.clone());
            all
        }
    };
    let page: Vec<Value> = all.iter().skip(offset).take(top).cloned().collect();
    let host = d
        .next_link_host
        .clone()
        .unwrap_or_else(|| headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1").to_owned());
    let mut body = json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#directoryObjects",
        "value": page,
    });
    if offset + top < all.len() {
        let select = query.get("$select").cloned().unwrap_or_default();
        body["@odata.nextLink"] = json!(format!(
            "http://{host}/v1.0/groups/{group}/transitiveMembers?$select={select}&$top={requested_top}&$skiptoken=RFNwdAIAAQAAA{}",
            offset + top
        ));
    }
    axum::Json(body).into_response()
}

/// The answer a scripted fault gives instead of the page; `None` to answer normally.
fn fault_response(d: &mut Directory, fault: Option<Fault>) -> Option<Response> {
    match fault {
        Some(Fault::Throttle { retry_after }) => {
            let mut response =
                graph_error(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", "Too many requests; please retry");
            response.headers_mut().insert("retry-after", retry_after.into());
            Some(response)
        }
        Some(Fault::Unavailable { retry_after }) => {
            let mut response =
                graph_error(StatusCode::SERVICE_UNAVAILABLE, "serviceNotAvailable", "Service unavailable");
            if let Some(seconds) = retry_after {
                response.headers_mut().insert("retry-after", seconds.into());
            }
            Some(response)
        }
        Some(Fault::Malformed) => {
            Some((StatusCode::OK, [("content-type", "application/json")], "{\"value\": [{\"id\": ").into_response())
        }
        Some(Fault::Status(status)) => {
            Some(graph_error(StatusCode::from_u16(status).unwrap(), "generalException", "scripted failure"))
        }
        Some(Fault::ExpireTokens) => {
            d.valid_tokens.clear();
            Some(graph_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
            ))
        }
        Some(Fault::Delay(_)) | None => None,
    }
}
