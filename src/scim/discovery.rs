//! `/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas` (RFC 7644 §4): what is advertised here
//! is what the handlers implement.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Value};

use super::handlers::scim_json;
use super::schema::{ResourceType, GROUPS, REGISTRY, USERS};
use super::{ScimError, ScimTeamspace};

const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

fn list(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST],
        "totalResults": resources.len(),
        "startIndex": 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

pub async fn service_provider_config(Extension(teamspace): Extension<ScimTeamspace>) -> Response {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://github.com/c7sync/c7sync#scim",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": super::handlers::MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "A token from `c7sync scim-token create`, sent as `Authorization: Bearer <token>`",
            "primary": true
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{}/ServiceProviderConfig", teamspace.base_url),
        }
    });
    scim_json(StatusCode::OK, &body)
}

fn resource_type_document(rt: ResourceType, base_url: &str) -> Value {
    let extensions: Vec<Value> = rt.extensions.iter().map(|urn| json!({"schema": urn, "required": false})).collect();
    let mut document = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": rt.name,
        "name": rt.name,
        "endpoint": format!("/{}", rt.endpoint),
        "description": if rt == USERS { "User Account" } else { "Group" },
        "schema": rt.core,
        "meta": {"resourceType": "ResourceType", "location": format!("{base_url}/ResourceTypes/{}", rt.name)},
    });
    if !extensions.is_empty() {
        document["schemaExtensions"] = Value::Array(extensions);
    }
    document
}

pub async fn resource_types(Extension(teamspace): Extension<ScimTeamspace>) -> Response {
    let all = [USERS, GROUPS].into_iter().map(|rt| resource_type_document(rt, &teamspace.base_url)).collect();
    scim_json(StatusCode::OK, &list(all))
}

pub async fn resource_type(Extension(teamspace): Extension<ScimTeamspace>, Path(id): Path<String>) -> Response {
    match [USERS, GROUPS].into_iter().find(|rt| rt.name == id) {
        Some(rt) => scim_json(StatusCode::OK, &resource_type_document(rt, &teamspace.base_url)),
        None => axum::response::IntoResponse::into_response(ScimError::not_found(format!("no resource type `{id}`"))),
    }
}

fn schema_document(document: &Value, base_url: &str) -> Value {
    let mut document = document.clone();
    let id = document["id"].as_str().unwrap_or_default().to_owned();
    document["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:Schema"]);
    document["meta"] = json!({"resourceType": "Schema", "location": format!("{base_url}/Schemas/{id}")});
    document
}

pub async fn schemas(Extension(teamspace): Extension<ScimTeamspace>) -> Response {
    let all = REGISTRY.documents.iter().map(|d| schema_document(d, &teamspace.base_url)).collect();
    scim_json(StatusCode::OK, &list(all))
}

pub async fn schema(Extension(teamspace): Extension<ScimTeamspace>, Path(id): Path<String>) -> Response {
    match REGISTRY.documents.iter().find(|d| d["id"].as_str() == Some(id.as_str())) {
        Some(document) => scim_json(StatusCode::OK, &schema_document(document, &teamspace.base_url)),
        None => axum::response::IntoResponse::into_response(ScimError::not_found(format!("no schema `{id}`"))),
    }
}
