//! `/Users` and `/Groups`: list with filter and paging, get, create, replace, patch, delete.
//! Every write takes the teamspace's write lock, stores the resource, and hands the member
//! change it implies to the reconcile core in the same transaction.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;
use serde_json::Value;

use super::filter::{self, FilterScope};
use super::resource::{attribute_list, etag, project, render};
use super::schema::{ResourceType, GROUPS, USERS};
use super::writer::{self, ResourceChange};
use super::{ScimError, ScimState, ScimTeamspace, SCIM_JSON};
use crate::store::ResourceKind;

/// Largest accepted body.
pub const MAX_BODY: usize = 1024 * 1024;

/// Bodies read and parsed at once; more wait their turn. A 1 MiB body can parse into ~30 MiB
/// of JSON values (half a million array elements), so this is what bounds the daemon's memory
/// under a flood of hostile bodies. It covers only reading and parsing: requests queued for
/// the writer still batch freely.
const MAX_PARSING: usize = 4;
static PARSING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_PARSING);
/// Most resources in one list response.
pub const MAX_RESULTS: i64 = 1000;
const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

type Result<T, E = ScimError> = std::result::Result<T, E>;

/// A JSON response with the SCIM media type.
pub fn scim_json(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    response
}

fn resource_response(status: StatusCode, body: &Value, version: i64, location: Option<&str>) -> Response {
    let mut response = scim_json(status, body);
    if let Ok(value) = HeaderValue::from_str(&etag(version)) {
        response.headers_mut().insert(header::ETAG, value);
    }
    if let Some(value) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn respond(result: Result<Response>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Where a resource type is stored.
pub(super) fn kind_of(rt: ResourceType) -> ResourceKind {
    if rt == USERS {
        ResourceKind::User
    } else {
        ResourceKind::Group
    }
}

/// Reads a JSON body: at most 1 MiB, a JSON media type in UTF-8, valid JSON, no attribute twice.
async fn read_json(teamspace: &ScimTeamspace, headers: &HeaderMap, body: Body) -> Result<Value> {
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let text = content_type.to_str().unwrap_or_default().to_ascii_lowercase();
        let mut parts = text.split(';');
        let essence = parts.next().unwrap_or_default().trim();
        if !matches!(essence, "application/scim+json" | "application/json") {
            return Err(ScimError::unsupported_media_type(format!(
                "Content-Type `{essence}`: send application/scim+json"
            )));
        }
        // JSON is UTF-8 (RFC 8259 §8.1); a body declared in another charset would be misread.
        let charset = parts.filter_map(|p| p.trim().strip_prefix("charset=")).map(|c| c.trim_matches('"')).next();
        if let Some(other) = charset.filter(|c| !matches!(*c, "utf-8" | "utf8")) {
            return Err(ScimError::unsupported_media_type(format!("charset `{other}`: send the body in UTF-8")));
        }
    }
    // The body is read under the teamspace's own limit and arrives before a parsing permit is
    // taken: a client that sends slowly holds up its own teamspace's reads, not the few
    // permits every teamspace's writes share. Neither semaphore is ever closed.
    let _reading = teamspace.limits.bodies.acquire().await.ok();
    let bytes =
        axum::body::to_bytes(body, MAX_BODY).await.map_err(
            |error| match crate::http::deadline::BodyTimeout::cause_of(&error) {
                Some(timeout) => ScimError::request_timeout(timeout.to_string()),
                None => ScimError::too_large(format!("the body is larger than {MAX_BODY} bytes")),
            },
        )?;
    let _parsing = PARSING.acquire().await.ok();
    super::unique_keys::parse(&bytes).map_err(|e| {
        if e.is_data() {
            ScimError::invalid_syntax(e.to_string()) // a repeated attribute, named
        } else {
            ScimError::invalid_syntax(format!("the body is not valid JSON: {e}"))
        }
    })
}

pub(super) fn check_if_match(wanted: Option<&str>, version: i64) -> Result<()> {
    let Some(wanted) = wanted else { return Ok(()) };
    let current = etag(version);
    let strip = |t: &str| t.trim().trim_start_matches("W/").trim_matches('"').to_owned();
    if wanted.split(',').any(|t| t.trim() == "*" || strip(t) == strip(&current)) {
        Ok(())
    } else {
        Err(ScimError::precondition_failed(format!("If-Match {wanted} does not match the current version {current}")))
    }
}

/// Query parameters of a list request.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    filter: Option<String>,
    start_index: Option<String>,
    count: Option<String>,
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

/// `POST /.search` body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchRequest {
    filter: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
    #[serde(default)]
    attributes: Vec<String>,
    #[serde(default)]
    excluded_attributes: Vec<String>,
}

/// Attribute selection of a single-resource request.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Projection {
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

fn number(text: Option<&str>, name: &str) -> Result<Option<i64>> {
    text.map(|t| t.trim().parse::<i64>().map_err(|_| ScimError::invalid_value(format!("{name} `{t}` is not a number"))))
        .transpose()
}

/// A list request's parameters, whichever way they came.
struct ListParams<'a> {
    filter: Option<&'a str>,
    start_index: Option<i64>,
    count: Option<i64>,
    attributes: Option<&'a str>,
    excluded: Option<&'a str>,
}

async fn list(
    state: &ScimState,
    teamspace: &ScimTeamspace,
    rt: ResourceType,
    params: ListParams<'_>,
) -> Result<Response> {
    let start = params.start_index.unwrap_or(1).max(1);
    let (total, resources) = matching(state, teamspace, rt, &params).await?;
    Ok(list_response(total, start, resources))
}

fn list_response(total: i64, start: i64, resources: Vec<Value>) -> Response {
    let body = serde_json::json!({
        "schemas": [LIST],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    });
    scim_json(StatusCode::OK, &body)
}

/// The total and the requested page of resources of one type matching the filter, projected.
async fn matching(
    state: &ScimState,
    teamspace: &ScimTeamspace,
    rt: ResourceType,
    params: &ListParams<'_>,
) -> Result<(i64, Vec<Value>)> {
    let ListParams { filter: filter_text, start_index, count, attributes, excluded } = *params;
    let filter = filter_text
        .filter(|f| !f.trim().is_empty())
        .map(|f| filter::parse(f).map_err(|e| ScimError::invalid_filter(format!("filter `{f}`: {e}"))))
        .transpose()?;
    let start = start_index.unwrap_or(1).max(1);
    let count = count.unwrap_or(MAX_RESULTS).clamp(0, MAX_RESULTS);
    let attributes = attribute_list(attributes)?;
    let excluded = attribute_list(excluded)?;
    let store = state.reconciler.store();
    let kind = kind_of(rt);
    let indexed = filter.as_ref().and_then(|f| filter::indexed(f, rt));
    let (total, page) = match (&filter, &indexed) {
        (None, _) | (Some(_), Some(_)) => {
            let (total, rows) =
                store.scim_query(teamspace.teamspace_id, kind, indexed.as_ref(), start - 1, count).await?;
            let rendered: Vec<Value> =
                rows.iter().map(|r| render(rt, r, &teamspace.base_url)).collect::<Result<_>>()?;
            (total, rendered)
        }
        (Some(filter), None) => scan(state, teamspace, rt, filter, start - 1, count).await?,
    };
    let resources: Vec<Value> = page.into_iter().map(|r| project(rt, r, &attributes, &excluded)).collect();
    Ok((total, resources))
}

/// A filter on attributes Entra never filters on, evaluated exactly against every resource
/// of the teamspace: read in chunks, keeping only the requested page, one such scan per
/// teamspace at a time (see [`super::MAX_SCANS`]).
async fn scan(
    state: &ScimState,
    teamspace: &ScimTeamspace,
    rt: ResourceType,
    filter: &filter::Filter,
    skip: i64,
    count: i64,
) -> Result<(i64, Vec<Value>)> {
    let _turn = tokio::time::timeout(SCAN_WAIT, teamspace.limits.scans.acquire())
        .await
        .map_err(|_| {
            ScimError::overloaded(format!(
                "other searches on attributes without an index are still running for this teamspace after {} s; \
                 retry, or filter on userName, externalId, id or displayName",
                SCAN_WAIT.as_secs()
            ))
        })?
        .ok();
    let store = state.reconciler.store();
    let (mut total, mut page, mut after) = (0i64, Vec::new(), 0i64);
    loop {
        let chunk = store.scim_chunk(teamspace.teamspace_id, kind_of(rt), after, SCAN_CHUNK).await?;
        for (_, row) in &chunk {
            let resource = render(rt, row, &teamspace.base_url)?;
            if filter::matches(filter, &resource, FilterScope::Resource(rt)) {
                if total >= skip && (page.len() as i64) < count {
                    page.push(resource);
                }
                total += 1;
            }
        }
        match chunk.last() {
            Some((seq, _)) if chunk.len() as i64 == SCAN_CHUNK => after = *seq,
            _ => return Ok((total, page)),
        }
    }
}

/// Resources read per query of a scan.
const SCAN_CHUNK: i64 = 500;

/// How long a scan waits for its teamspace's turn before it is refused with 503.
const SCAN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

async fn list_get(state: ScimState, teamspace: ScimTeamspace, rt: ResourceType, query: ListQuery) -> Response {
    respond(
        async {
            let start = number(query.start_index.as_deref(), "startIndex")?;
            let count = number(query.count.as_deref(), "count")?;
            let params = ListParams {
                filter: query.filter.as_deref(),
                start_index: start,
                count,
                attributes: query.attributes.as_deref(),
                excluded: query.excluded_attributes.as_deref(),
            };
            list(&state, &teamspace, rt, params).await
        }
        .await,
    )
}

/// `POST /Users/.search`, `/Groups/.search`, or `/.search` across both (`rt` = `None`).
async fn search(
    state: ScimState,
    teamspace: ScimTeamspace,
    rt: Option<ResourceType>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond(
        async {
            let request: SearchRequest = serde_json::from_value(read_json(&teamspace, &headers, body).await?)
                .map_err(|e| ScimError::invalid_syntax(format!("not a SearchRequest: {e}")))?;
            let attributes = (!request.attributes.is_empty()).then(|| request.attributes.join(","));
            let excluded = (!request.excluded_attributes.is_empty()).then(|| request.excluded_attributes.join(","));
            let params = ListParams {
                filter: request.filter.as_deref(),
                start_index: request.start_index,
                count: request.count,
                attributes: attributes.as_deref(),
                excluded: excluded.as_deref(),
            };
            if let Some(rt) = rt {
                return list(&state, &teamspace, rt, params).await;
            }
            // Across resource types: Users, then Groups, paged as one list. The page is cut
            // from each type's own paging, so a start past the first 1,000 Users still lands.
            let start = params.start_index.unwrap_or(1).max(1);
            let count = params.count.unwrap_or(MAX_RESULTS).clamp(0, MAX_RESULTS);
            let (users_total, mut page) = matching(&state, &teamspace, USERS, &params).await?;
            let groups = ListParams {
                start_index: Some((start - users_total).max(1)),
                count: Some(count - page.len() as i64),
                ..params
            };
            let (groups_total, groups) = matching(&state, &teamspace, GROUPS, &groups).await?;
            page.extend(groups);
            Ok(list_response(users_total + groups_total, start, page))
        }
        .await,
    )
}

/// `POST /.search`.
pub async fn search_all(
    State(state): State<ScimState>,
    Extension(teamspace): Extension<ScimTeamspace>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    search(state, teamspace, None, headers, body).await
}

async fn get_one(
    state: ScimState,
    teamspace: ScimTeamspace,
    rt: ResourceType,
    id: String,
    projection: Projection,
) -> Response {
    respond(
        async {
            let stored = state
                .reconciler
                .store()
                .scim_get(teamspace.teamspace_id, kind_of(rt), &id)
                .await?
                .ok_or_else(|| ScimError::not_found(format!("{} {id} not found", rt.name)))?;
            let attributes = attribute_list(projection.attributes.as_deref())?;
            let excluded = attribute_list(projection.excluded_attributes.as_deref())?;
            let body = project(rt, render(rt, &stored, &teamspace.base_url)?, &attributes, &excluded);
            Ok(resource_response(StatusCode::OK, &body, stored.version, None))
        }
        .await,
    )
}

async fn write(
    state: &ScimState,
    teamspace: &ScimTeamspace,
    rt: ResourceType,
    id: Option<String>,
    headers: &HeaderMap,
    change: ResourceChange,
    projection: Projection,
) -> Result<Response> {
    let if_match = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let created = id.is_none();
    let stored = writer::submit(state, teamspace, rt, id, if_match, change).await?;
    let Some(stored) = stored else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let rendered = render(rt, &stored, &teamspace.base_url)?;
    let attributes = attribute_list(projection.attributes.as_deref())?;
    let excluded = attribute_list(projection.excluded_attributes.as_deref())?;
    let location = rendered["meta"]["location"].as_str().map(str::to_owned);
    let rendered = project(rt, rendered, &attributes, &excluded);
    Ok(if created {
        resource_response(StatusCode::CREATED, &rendered, stored.version, location.as_deref())
    } else {
        resource_response(StatusCode::OK, &rendered, stored.version, None)
    })
}

async fn write_response(
    (state, teamspace, rt): (ScimState, ScimTeamspace, ResourceType),
    id: Option<String>,
    headers: HeaderMap,
    body: Option<Body>,
    kind: &'static str,
    projection: Projection,
) -> Response {
    respond(
        async {
            let change = match (kind, body) {
                ("delete", _) => ResourceChange::Delete,
                (_, None) => ResourceChange::Delete,
                ("patch", Some(body)) => {
                    let value = read_json(&teamspace, &headers, body).await?;
                    ResourceChange::Patch(
                        serde_json::from_value(value)
                            .map_err(|e| ScimError::invalid_syntax(format!("not a PatchOp request: {e}")))?,
                    )
                }
                ("create", Some(body)) => ResourceChange::Create(read_json(&teamspace, &headers, body).await?),
                (_, Some(body)) => ResourceChange::Replace(read_json(&teamspace, &headers, body).await?),
            };
            write(&state, &teamspace, rt, id, &headers, change, projection).await
        }
        .await,
    )
}

macro_rules! resource_handlers {
    ($rt:expr, $list:ident, $search:ident, $get:ident, $create:ident, $replace:ident, $patch:ident, $delete:ident) => {
        pub async fn $list(
            State(state): State<ScimState>,
            Extension(teamspace): Extension<ScimTeamspace>,
            query: Result<Query<ListQuery>, QueryRejection>,
        ) -> Response {
            match query {
                Ok(Query(query)) => list_get(state, teamspace, $rt, query).await,
                Err(rejection) => ScimError::invalid_value(format!("query parameters: {rejection}")).into_response(),
            }
        }

        pub async fn $search(
            State(state): State<ScimState>,
            Extension(teamspace): Extension<ScimTeamspace>,
            headers: HeaderMap,
            body: Body,
        ) -> Response {
            search(state, teamspace, Some($rt), headers, body).await
        }

        pub async fn $get(
            State(state): State<ScimState>,
            Extension(teamspace): Extension<ScimTeamspace>,
            Path(id): Path<String>,
            projection: Result<Query<Projection>, QueryRejection>,
        ) -> Response {
            get_one(state, teamspace, $rt, id, projection.map(|q| q.0).unwrap_or_default()).await
        }

        pub async fn $create(
            State(state): State<ScimState>,
            Extension(teamspace): Extension<ScimTeamspace>,
            projection: Result<Query<Projection>, QueryRejection>,
            headers: HeaderMap,
            body: Body,
        ) -> Response {
            let projection = projection.map(|q| q.0).unwrap_or_default();
            write_response((state, teamspace, $rt), None, headers, Some(body), "create", projection).await
        }

        pub async fn $replace(
            State(state): State<ScimState>,
            Extension(teamspace): Extension<ScimTeamspace>,
            Path(id): Path<String>,
            projection: Result<Query<Projection>, QueryRejection>,
            headers: HeaderMap,
            body: Body,
        ) -> Response {
            let projection = projection.map(|q| q.0).unwrap_or_default();
            write_response((state, teamspace, $rt), Some(id), headers, Some(body), "replace", projection).await
        }

        pub async fn $patch(
            State(state): State<ScimState>,
            Extension(teamspace): Extension<ScimTeamspace>,
            Path(id): Path<String>,
            projection: Result<Query<Projection>, QueryRejection>,
            headers: HeaderMap,
            body: Body,
        ) -> Response {
            let projection = projection.map(|q| q.0).unwrap_or_default();
            write_response((state, teamspace, $rt), Some(id), headers, Some(body), "patch", projection).await
        }

        pub async fn $delete(
            State(state): State<ScimState>,
            Extension(teamspace): Extension<ScimTeamspace>,
            Path(id): Path<String>,
            headers: HeaderMap,
        ) -> Response {
            write_response((state, teamspace, $rt), Some(id), headers, None, "delete", Projection::default()).await
        }
    };
}

resource_handlers!(USERS, list_users, search_users, get_user, create_user, replace_user, patch_user, delete_user);
resource_handlers!(
    GROUPS,
    list_groups,
    search_groups,
    get_group,
    create_group,
    replace_group,
    patch_group,
    delete_group
);
