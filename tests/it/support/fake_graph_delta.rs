//! Delta queries in the fake Graph, as Microsoft's documentation describes them:
//! - `GET /v1.0/groups/delta?$filter=id eq '…' or …&$select=members`: a first round lists each
//!   group with its current direct members in `members@delta`, and replays members removed
//!   earlier as `@removed`; later rounds (`$deltatoken`) carry only what changed since, as the
//!   net state per member. A round is spread over pages of at most `page_cap` member entries
//!   (`$skiptoken`), the last one with an `@odata.deltaLink`.
//! - `GET /v1.0/users/delta`: `$deltatoken=latest` gives a link and no data; later rounds give
//!   the users changed since (all their properties), deleted ones as `@removed`.
//! - `GET /v1.0/users?$filter=id in (…)`: at most 15 ids; users not found (or not yet
//!   replicated, see [`FakeGraph::hide_from_lookups`]) are left out.
//! - Tokens are opaque; [`FakeGraph::expire_delta_tokens`] makes every issued one answer
//!   `410 Gone` (`syncStateNotFound`, with a `Location` to start over), and
//!   [`FakeGraph::duplicate_delta_entries`] repeats every member entry later in its round.

use std::collections::{BTreeMap, HashSet};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{graph_error, Directory, FakeGraph, Member, Shared, User};

/// What an issued delta token stands for.
#[derive(Debug, Clone)]
pub(super) enum DeltaQuery {
    Groups(Vec<uuid::Uuid>),
    Users,
}

#[derive(Debug, Clone)]
pub(super) struct DeltaToken {
    query: DeltaQuery,
    /// Changes up to and including this sequence number are behind the token.
    seq: u64,
    expired: bool,
}

/// A round being paged through: its pages, and the token its last page hands out.
#[derive(Debug, Clone)]
pub(super) struct RoundPages {
    pages: Vec<Vec<Value>>,
    path: &'static str,
    delta_token: String,
}

/// One membership change, in order.
#[derive(Debug, Clone)]
pub(super) struct MemberEvent {
    pub seq: u64,
    pub group: uuid::Uuid,
    pub member: uuid::Uuid,
    pub odata_type: &'static str,
}

/// The delta side of the directory.
#[derive(Debug, Default)]
pub(super) struct DeltaLog {
    pub seq: u64,
    pub members: Vec<MemberEvent>,
    pub users: Vec<(u64, uuid::Uuid)>,
    pub tokens: BTreeMap<String, DeltaToken>,
    pub rounds: BTreeMap<String, RoundPages>,
    pub next_id: u64,
    pub duplicate: bool,
    pub hidden: HashSet<uuid::Uuid>,
}

impl DeltaLog {
    fn issue(&mut self, query: DeltaQuery) -> String {
        self.next_id += 1;
        let token = format!("dt{}x{}", self.next_id, uuid::Uuid::new_v4().simple());
        self.tokens.insert(token.clone(), DeltaToken { query, seq: self.seq, expired: false });
        token
    }
}

pub(super) fn odata_type(member: &Member) -> &'static str {
    match member {
        Member::User(_) => "#microsoft.graph.user",
        Member::Group(_) => "#microsoft.graph.group",
        Member::Device(_) => "#microsoft.graph.device",
        Member::ServicePrincipal(_) => "#microsoft.graph.servicePrincipal",
    }
}

pub(super) fn member_id(member: &Member) -> uuid::Uuid {
    match member {
        Member::User(user) => user.id,
        Member::Group(id) | Member::Device(id) | Member::ServicePrincipal(id) => *id,
    }
}

impl Directory {
    /// Logs the changes from `old` to `new` direct members of `group`.
    pub(super) fn log_membership(&mut self, group: uuid::Uuid, old: &[Member], new: &[Member]) {
        let before: HashSet<uuid::Uuid> = old.iter().map(member_id).collect();
        let after: HashSet<uuid::Uuid> = new.iter().map(member_id).collect();
        for member in old.iter().filter(|m| !after.contains(&member_id(m))) {
            self.delta.seq += 1;
            let event =
                MemberEvent { seq: self.delta.seq, group, member: member_id(member), odata_type: odata_type(member) };
            self.delta.members.push(event);
        }
        for member in new.iter().filter(|m| !before.contains(&member_id(m))) {
            self.delta.seq += 1;
            let event =
                MemberEvent { seq: self.delta.seq, group, member: member_id(member), odata_type: odata_type(member) };
            self.delta.members.push(event);
        }
        for member in new {
            if let Member::User(user) = member {
                self.users.insert(user.id, user.clone());
            }
        }
    }

    /// `members@delta` entries for `group` since `seq` (`None`: a first round).
    fn member_entries(&self, group: uuid::Uuid, since: Option<u64>) -> Vec<Value> {
        let entry = |odata_type: &str, id: uuid::Uuid, removed: bool| {
            let mut entry = json!({ "@odata.type": odata_type, "id": id.to_string() });
            if removed {
                entry["@removed"] = json!({ "reason": "deleted" });
            }
            entry
        };
        let mut entries = Vec::new();
        // Sets, not scans: the benchmark's first round covers 100,000 members.
        let current: HashSet<uuid::Uuid> = self.groups.get(&group).into_iter().flatten().map(member_id).collect();
        let mut seen = HashSet::new();
        let mut touched: Vec<(uuid::Uuid, &'static str)> = Vec::new();
        for event in self.delta.members.iter().filter(|e| e.group == group && since.is_none_or(|s| e.seq > s)) {
            if seen.insert(event.member) {
                touched.push((event.member, event.odata_type));
            }
        }
        match since {
            None => {
                for member in self.groups.get(&group).into_iter().flatten() {
                    entries.push(entry(odata_type(member), member_id(member), false));
                }
                // Members removed earlier come back as removals in a first round.
                for (id, odata_type) in touched.into_iter().filter(|(id, _)| !current.contains(id)) {
                    entries.push(entry(odata_type, id, true));
                }
            }
            Some(_) => {
                for (id, odata_type) in touched {
                    entries.push(entry(odata_type, id, !current.contains(&id)));
                }
            }
        }
        if self.delta.duplicate {
            let copies = entries.clone();
            entries.extend(copies);
        }
        entries
    }

    /// A groups round as pages of at most `page_cap` member entries; a group with more than
    /// a page's worth comes back on several pages, each time with some of them.
    fn group_round(&self, groups: &[uuid::Uuid], since: Option<u64>) -> Vec<Vec<Value>> {
        let mut flat: Vec<(uuid::Uuid, Option<Value>)> = Vec::new();
        for group in groups.iter().filter(|g| self.groups.contains_key(g)) {
            let entries = self.member_entries(*group, since);
            if entries.is_empty() && since.is_none() {
                flat.push((*group, None));
            }
            flat.extend(entries.into_iter().map(|entry| (*group, Some(entry))));
        }
        let pages: Vec<Vec<Value>> = flat
            .chunks(self.page_cap)
            .map(|chunk| {
                let mut objects: Vec<(uuid::Uuid, Vec<Value>)> = Vec::new();
                for (group, entry) in chunk {
                    if objects.last().map(|(g, _)| g) != Some(group) {
                        objects.push((*group, Vec::new()));
                    }
                    objects.last_mut().unwrap().1.extend(entry.clone());
                }
                objects.into_iter().map(|(group, members)| group_object(group, members)).collect()
            })
            .collect();
        if pages.is_empty() {
            vec![Vec::new()]
        } else {
            pages
        }
    }

    fn user_round(&self, since: u64) -> Vec<Vec<Value>> {
        let mut seen = HashSet::new();
        let mut objects = Vec::new();
        for (_, id) in self.delta.users.iter().filter(|(seq, _)| *seq > since) {
            if !seen.insert(*id) {
                continue;
            }
            objects.push(match self.users.get(id) {
                Some(user) => user.to_json(),
                None => json!({ "id": id.to_string(), "@removed": { "reason": "changed" } }),
            });
        }
        let pages: Vec<Vec<Value>> = objects.chunks(self.page_cap).map(<[Value]>::to_vec).collect();
        if pages.is_empty() {
            vec![Vec::new()]
        } else {
            pages
        }
    }
}

fn group_object(group: uuid::Uuid, members: Vec<Value>) -> Value {
    json!({ "@odata.type": "#microsoft.graph.group", "id": group.to_string(), "members@delta": members })
}

impl FakeGraph {
    /// Changes a user's attributes (rename, disable): `users/delta` reports it.
    pub fn set_user(&self, user: User) {
        self.with(|d| {
            for members in d.groups.values_mut() {
                for member in members.iter_mut() {
                    if matches!(member, Member::User(u) if u.id == user.id) {
                        *member = Member::User(user.clone());
                    }
                }
            }
            d.listings.clear();
            d.delta.seq += 1;
            let seq = d.delta.seq;
            d.delta.users.push((seq, user.id));
            d.users.insert(user.id, user);
        });
    }

    /// Deletes a user: it leaves every group, and `users/delta` reports it `@removed`.
    pub fn delete_user(&self, id: uuid::Uuid) {
        self.with(|d| {
            let groups: Vec<uuid::Uuid> = d.groups.keys().copied().collect();
            for group in groups {
                let old = d.groups[&group].clone();
                let new: Vec<Member> = old.iter().filter(|m| member_id(m) != id).cloned().collect();
                d.log_membership(group, &old, &new);
                d.groups.insert(group, new);
            }
            d.listings.clear();
            d.users.remove(&id);
            d.delta.seq += 1;
            let seq = d.delta.seq;
            d.delta.users.push((seq, id));
        });
    }

    /// Every delta token issued so far answers `410 Gone` from now on.
    pub fn expire_delta_tokens(&self) {
        self.with(|d| d.delta.tokens.values_mut().for_each(|t| t.expired = true));
    }

    /// Every member entry of a round comes twice, the copy later in the round.
    pub fn duplicate_delta_entries(&self, on: bool) {
        self.with(|d| d.delta.duplicate = on);
    }

    /// Look-ups by id do not find this user yet (directory replication lag).
    pub fn hide_from_lookups(&self, id: uuid::Uuid, hidden: bool) {
        self.with(|d| {
            if hidden {
                d.delta.hidden.insert(id);
            } else {
                d.delta.hidden.remove(&id);
            }
        });
    }

    /// Requests whose path contains `part`, over the fake's life.
    pub fn requests_to(&self, part: &str) -> usize {
        self.counters(|c| c.requests.iter().filter(|r| r.contains(part)).count())
    }

    /// Every request so far, in order.
    pub fn request_count(&self) -> usize {
        self.counters(|c| c.requests.len())
    }
}

/// The `?$filter=id eq 'a' or id eq 'b'` ids.
fn filtered_groups(filter: &str) -> Option<Vec<uuid::Uuid>> {
    filter.split(" or ").map(|clause| clause.trim().strip_prefix("id eq '")?.strip_suffix('\'')?.parse().ok()).collect()
}

/// Authorisation and scripted faults shared with the members endpoint; `Some` ends the request.
fn refuse(d: &mut Directory, headers: &HeaderMap, uri: &axum::http::Uri) -> Option<Response> {
    d.counters.requests.push(uri.to_string());
    let fault = d.delta_faults.pop_front();
    if let Some(response) = super::fault_response(d, fault) {
        return Some(response);
    }
    let token = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if !token.is_some_and(|t| d.valid_tokens.contains(t)) {
        return Some(graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token has expired or is not yet valid.",
        ));
    }
    None
}

/// What both delta endpoints do first: authorise (or meet a scripted fault), and answer a
/// later page of a round already started. `Ok`: the directory and the host for links.
fn open_round<'a>(
    directory: &'a Shared,
    query: &std::collections::HashMap<String, String>,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
) -> Result<(std::sync::MutexGuard<'a, Directory>, String), Box<Response>> {
    let mut d = directory.lock().unwrap();
    if let Some(refused) = refuse(&mut d, headers, uri) {
        return Err(Box::new(refused));
    }
    let host = host(&d, headers);
    if let Some((round, index)) = query.get("$skiptoken").and_then(|t| skip(t)) {
        return Err(Box::new(page_of(&d, &host, &round, index)));
    }
    Ok((d, host))
}

fn host(d: &Directory, headers: &HeaderMap) -> String {
    d.next_link_host
        .clone()
        .unwrap_or_else(|| headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1").to_owned())
}

/// Stores a round's pages and answers its first.
fn start_round(
    d: &mut Directory,
    host: &str,
    path: &'static str,
    pages: Vec<Vec<Value>>,
    query: DeltaQuery,
) -> Response {
    let delta_token = d.delta.issue(query);
    d.delta.next_id += 1;
    let round = format!("r{}", d.delta.next_id);
    d.delta.rounds.insert(round.clone(), RoundPages { pages, path, delta_token });
    page_of(d, host, &round, 0)
}

fn page_of(d: &Directory, host: &str, round: &str, index: usize) -> Response {
    let Some(pages) = d.delta.rounds.get(round) else {
        return graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", "Invalid skip token");
    };
    let Some(page) = pages.pages.get(index) else {
        return graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", "Invalid skip token");
    };
    let mut body = json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#groups(members)",
        "value": page.clone(),
    });
    let path = pages.path;
    if index + 1 < pages.pages.len() {
        body["@odata.nextLink"] = json!(format!("http://{host}/v1.0/{path}?$skiptoken={round}p{}", index + 1));
    } else {
        body["@odata.deltaLink"] = json!(format!("http://{host}/v1.0/{path}?$deltatoken={}", pages.delta_token));
    }
    axum::Json(body).into_response()
}

/// A skip token `r{round}p{index}`.
fn skip(token: &str) -> Option<(String, usize)> {
    let (round, index) = token.split_once('p')?;
    Some((round.to_owned(), index.parse().ok()?))
}

fn gone(host: &str, path: &str) -> Response {
    let mut response = graph_error(
        StatusCode::GONE,
        "syncStateNotFound",
        "The requested sync state was not found or has expired. Start over with a new delta query.",
    );
    response.headers_mut().insert("location", format!("http://{host}/v1.0/{path}").parse().unwrap());
    response
}

pub(super) async fn groups_delta(
    State(directory): State<Shared>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let (mut d, host) = match open_round(&directory, &query, &headers, &uri) {
        Ok(opened) => opened,
        Err(answered) => return *answered,
    };
    if let Some(token) = query.get("$deltatoken") {
        let Some(token) = d.delta.tokens.get(token).cloned() else {
            return graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", "Invalid delta token");
        };
        let DeltaQuery::Groups(groups) = token.query else {
            return graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", "Token of another query");
        };
        if token.expired {
            return gone(&host, "groups/delta");
        }
        let pages = d.group_round(&groups, Some(token.seq));
        return start_round(&mut d, &host, "groups/delta", pages, DeltaQuery::Groups(groups));
    }
    if query.get("$select").map(String::as_str) != Some("members") {
        return graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", "this fake answers $select=members only");
    }
    let Some(groups) = query.get("$filter").and_then(|f| filtered_groups(f)) else {
        return graph_error(StatusCode::BAD_REQUEST, "Request_UnsupportedQuery", "Unsupported filter");
    };
    if groups.len() > 50 {
        return graph_error(StatusCode::BAD_REQUEST, "Request_UnsupportedQuery", "Too many filter clauses (max 50)");
    }
    let pages = d.group_round(&groups, None);
    start_round(&mut d, &host, "groups/delta", pages, DeltaQuery::Groups(groups))
}

pub(super) async fn users_delta(
    State(directory): State<Shared>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let (mut d, host) = match open_round(&directory, &query, &headers, &uri) {
        Ok(opened) => opened,
        Err(answered) => return *answered,
    };
    match query.get("$deltatoken").map(String::as_str) {
        Some("latest") => start_round(&mut d, &host, "users/delta", vec![Vec::new()], DeltaQuery::Users),
        Some(token) => {
            let Some(token) = d.delta.tokens.get(token).cloned() else {
                return graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", "Invalid delta token");
            };
            if token.expired {
                return gone(&host, "users/delta");
            }
            let pages = d.user_round(token.seq);
            start_round(&mut d, &host, "users/delta", pages, DeltaQuery::Users)
        }
        None => graph_error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "this fake answers $deltatoken=latest or a token",
        ),
    }
}

pub(super) async fn users_by_id(
    State(directory): State<Shared>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let mut d = directory.lock().unwrap();
    if let Some(refused) = refuse(&mut d, &headers, &uri) {
        return refused;
    }
    let ids: Option<Vec<uuid::Uuid>> = query
        .get("$filter")
        .and_then(|f| f.strip_prefix("id in (")?.strip_suffix(')').map(str::to_owned))
        .map(|list| list.split(',').filter_map(|id| id.trim().trim_matches('\'').parse().ok()).collect());
    let Some(ids) = ids else {
        return graph_error(StatusCode::BAD_REQUEST, "Request_UnsupportedQuery", "Unsupported filter");
    };
    if ids.len() > 15 {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "Request_UnsupportedQuery",
            "Too many values in an in clause (max 15)",
        );
    }
    let found: Vec<Value> = ids
        .iter()
        .filter(|id| !d.delta.hidden.contains(id))
        .filter_map(|id| d.users.get(id).map(User::to_json))
        .collect();
    axum::Json(json!({ "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users", "value": found }))
        .into_response()
}
