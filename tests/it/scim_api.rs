//! The SCIM endpoint over real HTTP on 127.0.0.1 with a real client, against a real SQLite
//! file: Entra's documented request sequence, its PATCH quirks, errors, isolation, tokens.

use std::collections::HashMap;
use std::sync::Arc;

use c7sync::clock::Millis;
use c7sync::http::{router, AppState};
use c7sync::scim::provision::Policy;
use c7sync::scim::{token, ScimState};
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

const ADA_OID: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
const BOB_OID: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3302";

struct Scim {
    db: TestDb,
    base: String,
    acme_token: String,
    globex_token: String,
    client: reqwest::Client,
    _server: tokio::task::JoinHandle<()>,
}

impl Scim {
    async fn start(groups: &[&str]) -> Scim {
        let db = temp_db().await;
        let policy =
            Policy { oid_attribute: "externalId".into(), groups: groups.iter().map(|g| g.to_lowercase()).collect() };
        let policies = HashMap::from([("acme".to_owned(), policy.clone()), ("globex".to_owned(), policy)]);
        let scim = ScimState::new(db.reconciler.clone(), policies);
        let app = router(AppState::new(db.store().clone(), c7sync::metrics::Metrics::new()), scim, None);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let mut tokens = Vec::new();
        for name in ["acme", "globex"] {
            let teamspace = db.store().teamspace(name).await.unwrap();
            let (secret, hash) = token::new_secret().unwrap();
            let id = db.store().create_scim_token(teamspace.id, "test", &hash, Millis::now()).await.unwrap();
            tokens.push(token::format(id, &secret));
        }
        Scim {
            base: format!("http://{addr}/scim/v2"),
            acme_token: tokens[0].clone(),
            globex_token: tokens[1].clone(),
            client: reqwest::Client::new(),
            db,
            _server: server,
        }
    }

    async fn call(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/scim+json").body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(json!({ "raw": text })) };
        if !text.is_empty() {
            assert_eq!(headers["content-type"], "application/scim+json", "{path}: {text}");
        }
        (status, body, headers)
    }

    async fn acme(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let (status, body, _) = self.call(Some(&self.acme_token.clone()), method, path, body).await;
        (status, body)
    }

    async fn members(&self, teamspace: &str) -> Vec<(String, String, Vec<String>)> {
        let id = self.db.store().teamspace(teamspace).await.unwrap().id;
        let mut members: Vec<_> = self
            .db
            .store()
            .list_members(id)
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.oid.to_string(), m.email, m.sources))
            .collect();
        members.sort();
        members
    }
}

/// A user as Entra's default attribute mapping sends it.
fn entra_user(user_name: &str, oid: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": oid,
        "userName": user_name,
        "active": true,
        "displayName": "Ada Lovelace",
        "emails": [{"primary": true, "type": "work", "value": user_name}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Ada Lovelace", "familyName": "Lovelace", "givenName": "Ada"},
        "title": "Analyst",
        "preferredLanguage": "en-GB",
        "phoneNumbers": [{"type": "work", "value": "+44 20 7946 0000"}],
        "addresses": [{"type": "work", "streetAddress": "1 Engine St", "locality": "London", "country": "GB", "primary": true}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "department": "Analytical Engines", "employeeNumber": "1815", "manager": {"value": "babbage"}
        }
    })
}

/// A request and the status and `scimType` it must get.
type ErrorCase = (Method, String, Option<Value>, StatusCode, Option<&'static str>);

fn filter(attribute: &str, value: &str) -> String {
    let raw = format!("{attribute} eq \"{value}\"");
    format!("filter={}", url::form_urlencoded::byte_serialize(raw.as_bytes()).collect::<String>())
}

fn patch(operations: Value) -> Option<Value> {
    Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations}))
}

#[tokio::test]
async fn entra_provisioning_sequence_end_to_end() {
    let scim = Scim::start(&[]).await;
    // Test connection: a filter on a random GUID finds nothing.
    // Entra appends its feature flag to the Tenant URL: an unknown query parameter is ignored.
    let query = format!("/Users?aadOptscim062020&{}", filter("userName", &uuid::Uuid::new_v4().to_string()));
    let (status, list) = scim.acme(Method::GET, &query, None).await;
    assert_eq!((status, list["totalResults"].clone()), (StatusCode::OK, json!(0)));

    // Filter before create, create, get.
    let (_, list) = scim.acme(Method::GET, &format!("/Users?{}", filter("userName", "ada@contoso.com")), None).await;
    assert_eq!(list["totalResults"], 0);
    let (status, body, headers) =
        scim.call(Some(&scim.acme_token), Method::POST, "/Users", Some(entra_user("ada@contoso.com", ADA_OID))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert!(headers["location"].to_str().unwrap().ends_with(&format!("/scim/v2/Users/{id}")));
    assert_eq!(headers["etag"], "W/\"1\"");
    assert_eq!(body["meta"]["resourceType"], "User");
    assert_eq!(body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"], "Analytical Engines");
    assert_eq!(body["addresses"][0]["locality"], "London", "every attribute Entra sends is kept");
    assert_eq!(
        scim.members("acme").await,
        [(ADA_OID.to_owned(), "ada@contoso.com".to_owned(), vec!["scim".to_owned()])]
    );

    let (status, got) = scim.acme(Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!((status, got["userName"].clone()), (StatusCode::OK, json!("ada@contoso.com")));
    for query in [
        filter("userName", "ADA@Contoso.com"),
        filter("externalId", ADA_OID),
        filter("emails.value", "ada@contoso.com"),
    ] {
        let (_, list) = scim.acme(Method::GET, &format!("/Users?{query}"), None).await;
        assert_eq!(list["totalResults"], 1, "{query}");
        assert_eq!(list["Resources"][0]["id"], id.as_str());
    }

    // Entra's PATCH forms: no-path replace with dotted keys and an extension URN, string booleans.
    let (status, patched) = scim
        .acme(
            Method::PATCH,
            &format!("/Users/{id}"),
            patch(json!([
                {"op": "Replace", "value": {"name.givenName": "Augusta Ada", "displayName": "Augusta Ada King",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Mathematics"}},
                {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+44 7700 900000"},
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "ada.king@contoso.com"}
            ])),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"]["givenName"], "Augusta Ada");
    assert_eq!(patched["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"], "Mathematics");
    assert_eq!(patched["phoneNumbers"].as_array().unwrap().len(), 2);
    assert_eq!(patched["meta"]["version"], "W/\"2\"");
    let members = scim.members("acme").await;
    assert_eq!(members[0].1, "ada.king@contoso.com", "the primary email became the member's address");

    // Disable: the claim goes, the resource stays. Enable: it comes back.
    let (status, _) = scim
        .acme(
            Method::PATCH,
            &format!("/Users/{id}"),
            patch(json!([{"op": "Replace", "path": "active", "value": "False"}])),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(scim.members("acme").await.is_empty());
    let (status, got) = scim.acme(Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!((status, got["active"].clone()), (StatusCode::OK, json!(false)));
    scim.acme(Method::PATCH, &format!("/Users/{id}"), patch(json!([{"op": "replace", "value": {"active": "True"}}])))
        .await;
    assert_eq!(scim.members("acme").await.len(), 1);

    // A second user and a group.
    let (_, bob) = scim.acme(Method::POST, "/Users", Some(entra_user("bob@contoso.com", BOB_OID))).await;
    let bob_id = bob["id"].as_str().unwrap().to_owned();
    let (status, group) = scim
        .acme(
            Method::POST,
            "/Groups",
            Some(
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Context7 Developers",
                "externalId": "g-1", "members": [{"value": id}]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let group_id = group["id"].as_str().unwrap().to_owned();
    let (_, found) = scim
        .acme(
            Method::GET,
            &format!("/Groups?{}&excludedAttributes=members", filter("displayName", "context7 developers")),
            None,
        )
        .await;
    assert_eq!(found["totalResults"], 1);
    assert!(found["Resources"][0].get("members").is_none(), "excludedAttributes=members honoured");
    let path = format!("/Groups/{group_id}");
    scim.acme(Method::PATCH, &path, patch(json!([{"op": "Add", "path": "members", "value": [{"value": bob_id}]}])))
        .await;
    let (_, by_member) = scim.acme(Method::GET, &format!("/Groups?{}", filter("members.value", &bob_id)), None).await;
    assert_eq!(by_member["totalResults"], 1);
    let (_, after) = scim
        .acme(Method::PATCH, &path, patch(json!([{"op": "Remove", "path": "members", "value": [{"value": id}]}])))
        .await;
    assert_eq!(after["members"], json!([{"value": bob_id}]), "Remove with a value list removes only those members");
    let (_, after) = scim
        .acme(Method::PATCH, &path, patch(json!([{"op": "remove", "path": format!("members[value eq \"{bob_id}\"]")}])))
        .await;
    assert!(after.get("members").is_none());
    let (status, _) = scim.acme(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(scim.acme(Method::GET, &path, None).await.0, StatusCode::NOT_FOUND);

    // Delete: resource and claim gone, the change audited.
    let (status, _) = scim.acme(Method::DELETE, &format!("/Users/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(scim.acme(Method::GET, &format!("/Users/{id}"), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(scim.members("acme").await.iter().map(|m| m.0.clone()).collect::<Vec<_>>(), [BOB_OID]);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events a JOIN runs r ON r.id = a.run_id WHERE r.trigger = 'scim'",
    )
    .fetch_one(&inspect(scim.db.store()).await)
    .await
    .unwrap();
    assert!(audited >= 5, "adds, updates, removes are audited ({audited})");
    assert!(scim.db.store().check_integrity().await.unwrap().is_empty());
}

#[tokio::test]
async fn client_mistakes_get_scim_errors_never_5xx() {
    let scim = Scim::start(&[]).await;
    let (_, ada) = scim.acme(Method::POST, "/Users", Some(entra_user("ada@contoso.com", ADA_OID))).await;
    let id = ada["id"].as_str().unwrap().to_owned();

    let (status, body, headers) = scim.call(None, Method::GET, "/Users", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    assert_eq!(body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error");
    assert_eq!(scim.call(Some("c7s_1_deadbeef"), Method::GET, "/Users", None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(scim.call(Some("nonsense"), Method::GET, "/Users", None).await.0, StatusCode::UNAUTHORIZED);

    let cases: Vec<ErrorCase> = vec![
        (
            Method::POST,
            "/Users".into(),
            Some(entra_user("ADA@contoso.com", BOB_OID)),
            StatusCode::CONFLICT,
            Some("uniqueness"),
        ),
        (
            Method::POST,
            "/Users".into(),
            Some(entra_user("other@contoso.com", ADA_OID)),
            StatusCode::CONFLICT,
            Some("uniqueness"),
        ),
        (
            Method::POST,
            "/Users".into(),
            Some(json!({"schemas": [], "active": true})),
            StatusCode::BAD_REQUEST,
            Some("invalidValue"),
        ),
        (
            Method::POST,
            "/Users".into(),
            Some(json!({"userName": "x@y.z", "active": "sometimes"})),
            StatusCode::BAD_REQUEST,
            Some("invalidValue"),
        ),
        (Method::GET, "/Users?filter=userName%20eq".into(), None, StatusCode::BAD_REQUEST, Some("invalidFilter")),
        (Method::GET, "/Users?startIndex=abc".into(), None, StatusCode::BAD_REQUEST, Some("invalidValue")),
        (Method::GET, "/Users/no-such-id".into(), None, StatusCode::NOT_FOUND, None),
        (
            Method::PATCH,
            format!("/Users/{id}"),
            patch(json!([{"op": "Replace", "path": "nosuch", "value": 1}])),
            StatusCode::BAD_REQUEST,
            Some("invalidPath"),
        ),
        (
            Method::PATCH,
            format!("/Users/{id}"),
            patch(json!([{"op": "Frob", "path": "active", "value": true}])),
            StatusCode::BAD_REQUEST,
            Some("invalidValue"),
        ),
        (
            Method::PATCH,
            format!("/Users/{id}"),
            Some(json!({"Operations": []})),
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
        ),
        (Method::GET, "/Nothing".into(), None, StatusCode::NOT_FOUND, None),
    ];
    for (method, path, body, status, scim_type) in cases {
        let (got, error, _) = scim.call(Some(&scim.acme_token), method.clone(), &path, body).await;
        assert_eq!(got, status, "{method} {path}: {error}");
        assert_eq!(error["scimType"].as_str(), scim_type, "{method} {path}: {error}");
        assert_eq!(error["status"], status.as_u16().to_string());
    }

    let raw = |content_type: &'static str, body: Vec<u8>| {
        scim.client
            .post(format!("{}/Users", scim.base))
            .bearer_auth(&scim.acme_token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    assert_eq!(
        raw("application/scim+json", b"{\"userName\": ".to_vec()).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(raw("application/scim+json", vec![0xff, 0xfe, b'{']).await.unwrap().status(), StatusCode::BAD_REQUEST);
    assert_eq!(raw("text/plain", b"{}".to_vec()).await.unwrap().status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = format!("{{\"userName\": \"big@contoso.com\", \"title\": \"{}\"}}", "x".repeat(1_100_000));
    assert_eq!(raw("application/scim+json", huge.into_bytes()).await.unwrap().status(), StatusCode::PAYLOAD_TOO_LARGE);
    let bomb = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(raw("application/scim+json", bomb.into_bytes()).await.unwrap().status(), StatusCode::BAD_REQUEST);

    // If-Match: the current ETag passes, a stale one is 412.
    let stale = scim
        .client
        .patch(format!("{}/Users/{id}", scim.base))
        .bearer_auth(&scim.acme_token)
        .header("if-match", "W/\"7\"")
        .header("content-type", "application/scim+json")
        .body(patch(json!([{"op": "replace", "path": "title", "value": "x"}])).unwrap().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let current = scim
        .client
        .delete(format!("{}/Users/{id}", scim.base))
        .bearer_auth(&scim.acme_token)
        .header("if-match", "W/\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(current.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_token_sees_only_its_teamspace_and_revoking_it_locks_it_out() {
    let scim = Scim::start(&[]).await;
    let (_, ada) = scim.acme(Method::POST, "/Users", Some(entra_user("ada@contoso.com", ADA_OID))).await;
    let id = ada["id"].as_str().unwrap();
    let globex = Some(scim.globex_token.as_str());
    assert_eq!(scim.call(globex, Method::GET, &format!("/Users/{id}"), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(scim.call(globex, Method::DELETE, &format!("/Users/{id}"), None).await.0, StatusCode::NOT_FOUND);
    let (_, list, _) =
        scim.call(globex, Method::GET, &format!("/Users?{}", filter("userName", "ada@contoso.com")), None).await;
    assert_eq!(list["totalResults"], 0);
    // The same person provisioned into globex too: a separate resource and member.
    let (status, _, _) = scim.call(globex, Method::POST, "/Users", Some(entra_user("ada@contoso.com", ADA_OID))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!((scim.members("acme").await.len(), scim.members("globex").await.len()), (1, 1));

    let id_of_token = token::split(&scim.globex_token).unwrap().0;
    scim.db.store().revoke_scim_token(id_of_token, Millis::now()).await.unwrap();
    // Credentials are cached for up to a second: the revocation takes effect within it.
    let revoked_at = std::time::Instant::now();
    while scim.call(globex, Method::GET, "/Users", None).await.0 != StatusCode::UNAUTHORIZED {
        assert!(revoked_at.elapsed() < std::time::Duration::from_secs(5), "the revoked token still works");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(scim.acme(Method::GET, "/Users", None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_user_without_a_usable_object_id_is_stored_but_not_a_member() {
    let scim = Scim::start(&[]).await;
    let mut user = entra_user("ada@contoso.com", "not-a-guid");
    let (status, body) = scim.acme(Method::POST, "/Users", Some(user.clone())).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(scim.members("acme").await.is_empty());
    let problem: Option<String> = sqlx::query_scalar("SELECT member_problem FROM scim_users")
        .fetch_one(&inspect(scim.db.store()).await)
        .await
        .unwrap();
    assert!(problem.unwrap().contains("not an Entra object id"));
    let details: String =
        sqlx::query_scalar("SELECT details FROM runs WHERE trigger = 'scim' ORDER BY id DESC LIMIT 1")
            .fetch_one(&inspect(scim.db.store()).await)
            .await
            .unwrap();
    assert!(details.contains("is stored but not a member"), "the reason is on the run: {details}");
    // Fixing the mapping makes the user a member.
    user["externalId"] = json!(ADA_OID);
    let (status, _) = scim.acme(Method::PUT, &format!("/Users/{}", body["id"].as_str().unwrap()), Some(user)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(scim.members("acme").await.len(), 1);
}

#[tokio::test]
async fn with_a_groups_option_only_members_of_those_groups_are_claimed() {
    let scim = Scim::start(&["Context7 Developers"]).await;
    let (_, ada) = scim.acme(Method::POST, "/Users", Some(entra_user("ada@contoso.com", ADA_OID))).await;
    let ada_id = ada["id"].as_str().unwrap().to_owned();
    assert!(scim.members("acme").await.is_empty(), "not in a listed group yet");
    let (_, other) =
        scim.acme(Method::POST, "/Groups", Some(json!({"displayName": "Sales", "members": [{"value": ada_id}]}))).await;
    assert!(scim.members("acme").await.is_empty(), "{other}");
    let (_, devs) = scim.acme(Method::POST, "/Groups", Some(json!({"displayName": "context7 developers"}))).await;
    let devs_path = format!("/Groups/{}", devs["id"].as_str().unwrap());
    scim.acme(
        Method::PATCH,
        &devs_path,
        patch(json!([{"op": "Add", "path": "members", "value": [{"value": ada_id}]}])),
    )
    .await;
    assert_eq!(scim.members("acme").await.len(), 1);
    scim.acme(
        Method::PATCH,
        &devs_path,
        patch(json!([{"op": "Remove", "path": "members", "value": [{"value": ada_id}]}])),
    )
    .await;
    assert!(scim.members("acme").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writes_are_batched_without_losing_or_mixing_up_any() {
    let scim = Arc::new(Scim::start(&[]).await);
    let mut tasks = Vec::new();
    for n in 0..60u128 {
        let scim = scim.clone();
        tasks.push(tokio::spawn(async move {
            // Users 0 and 1 share a userName: exactly one of them may be created.
            let user_name = if n == 1 { "user0@contoso.com".to_owned() } else { format!("user{n}@contoso.com") };
            let oid = uuid::Uuid::from_u128(0x3f25_04e0_4f89_41d3_9a0c_0000_0000_0000 + n).to_string();
            scim.acme(Method::POST, "/Users", Some(entra_user(&user_name, &oid))).await.0
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 59, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count(), 1);
    assert_eq!(scim.members("acme").await.len(), 59);
    assert_eq!(count(scim.db.store(), "scim_users").await, 59);
    assert_eq!(count(scim.db.store(), "audit_events").await, 59);
    assert!(scim.db.store().check_integrity().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_ten_thousand_member_group_patch_adds_and_removes_exactly() {
    let scim = Scim::start(&[]).await;
    let (_, group) = scim.acme(Method::POST, "/Groups", Some(json!({"displayName": "Everyone"}))).await;
    let path = format!("/Groups/{}", group["id"].as_str().unwrap());
    let ids: Vec<String> = (0..10_000).map(|n| format!("member-{n:05}")).collect();
    let all: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    let (status, body) =
        scim.acme(Method::PATCH, &path, patch(json!([{"op": "Add", "path": "members", "value": all}]))).await;
    assert_eq!(status, StatusCode::OK, "{}", body["detail"]);
    assert_eq!(body["members"].as_array().unwrap().len(), 10_000);
    let (_, found) =
        scim.acme(Method::GET, &format!("/Groups?{}", filter("members.value", "member-09999")), None).await;
    assert_eq!(found["totalResults"], 1);

    let half: Vec<Value> = ids.iter().step_by(2).map(|id| json!({"value": id})).collect();
    let (status, body) =
        scim.acme(Method::PATCH, &path, patch(json!([{"op": "Remove", "path": "members", "value": half}]))).await;
    assert_eq!(status, StatusCode::OK);
    let left: Vec<&str> = body["members"].as_array().unwrap().iter().map(|m| m["value"].as_str().unwrap()).collect();
    assert_eq!(left.len(), 5_000);
    assert!(left.iter().all(|id| id.ends_with(['1', '3', '5', '7', '9'])), "only the named members were removed");
    let indexed: i64 = sqlx::query_scalar("SELECT count(*) FROM scim_group_members")
        .fetch_one(&inspect(scim.db.store()).await)
        .await
        .unwrap();
    assert_eq!(indexed, 5_000);
}

#[tokio::test]
async fn attributes_named_in_any_case_come_back_once_under_their_own_name() {
    let scim = Scim::start(&[]).await;
    let user = json!({"userName": "ada@contoso.com", "externalId": ADA_OID, "active": true, "displayName": "Ada"});
    let (status, created, _) = scim.call(Some(&scim.acme_token), Method::POST, "/Users", Some(user)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let path = format!("/Users/{id}?attributes=ID,SCHEMAS,USERNAME,displayname");
    let (status, projected, _) = scim.call(Some(&scim.acme_token), Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    let keys: std::collections::BTreeSet<&str> = projected.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["displayName", "id", "schemas", "userName"].into_iter().collect(), "{projected}");
}

/// Creates `users` users in acme through `POST /Users`, 32 at a time (as Entra's service does).
async fn create_acme_users(scim: &Arc<Scim>, users: u128) {
    let creates = futures_util::stream::iter(0..users).map(|n| {
        let scim = scim.clone();
        async move {
            let oid = uuid::Uuid::from_u128(0x3f25_04e0_4f89_41d3_9a0c_0000_0001_0000 + n).to_string();
            scim.acme(Method::POST, "/Users", Some(entra_user(&format!("user{n:04}@contoso.com"), &oid))).await.0
        }
    });
    let statuses: Vec<StatusCode> = creates.buffer_unordered(32).collect().await;
    assert!(statuses.iter().all(|s| *s == StatusCode::CREATED), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_search_across_types_pages_past_the_first_thousand_users() {
    let scim = Arc::new(Scim::start(&[]).await);
    create_acme_users(&scim, 1_003).await;
    let (status, _) = scim.acme(Method::POST, "/Groups", Some(json!({"displayName": "Everyone"}))).await;
    assert_eq!(status, StatusCode::CREATED);

    let search = |start: i64, count: i64| {
        let scim = scim.clone();
        async move {
            let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "startIndex": start, "count": count});
            let (status, page) = scim.acme(Method::POST, "/.search", Some(body)).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            assert_eq!(page["totalResults"], 1_004);
            let kinds: Vec<String> = page["Resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["meta"]["resourceType"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(page["itemsPerPage"], kinds.len());
            kinds
        }
    };
    let past_a_thousand = search(1_001, 10).await;
    assert_eq!(past_a_thousand, ["User", "User", "User", "Group"]);
    assert_eq!(search(1_004, 10).await, ["Group"]);
    assert_eq!(search(1, 1_000).await.len(), 1_000);
    assert!(search(1_005, 10).await.is_empty());
}

/// A filter on an attribute with no index reads the whole teamspace; many at once must not
/// take the database and the CPU from another teamspace's look-ups.
#[tokio::test(flavor = "multi_thread")]
async fn unindexed_searches_queue_per_teamspace_and_others_stay_fast() {
    let scim = Arc::new(Scim::start(&[]).await);
    create_acme_users(&scim, 3_000).await;
    let (status, _, _) = scim
        .call(Some(&scim.globex_token), Method::POST, "/Users", Some(entra_user("gina@contoso.com", BOB_OID)))
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // The page of an unindexed filter is exact, and its total counts every match.
    let (status, page) =
        scim.acme(Method::GET, &format!("/Users?{}&startIndex=2999&count=5", filter("title", "Analyst")), None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!((page["totalResults"].as_i64(), page["Resources"].as_array().map(Vec::len)), (Some(3_000), Some(2)));

    let finished = Arc::new(std::sync::Mutex::new(Vec::new()));
    // Each request notes who it was for as it completes.
    let get = |who: &'static str, path: String| {
        let (scim, finished) = (scim.clone(), finished.clone());
        tokio::spawn(async move {
            let token = if who == "acme" { &scim.acme_token } else { &scim.globex_token };
            let (status, body, headers) = scim.call(Some(token), Method::GET, &path, None).await;
            finished.lock().unwrap().push(who);
            (status, body, headers.get("retry-after").cloned())
        })
    };
    let scans: Vec<_> =
        (0..20).map(|_| get("acme", format!("/Users?{}&count=1", filter("title", "Analyst")))).collect();
    let lookup = get("globex", format!("/Users?{}", filter("userName", "gina@contoso.com")));
    let (status, found, _) = lookup.await.unwrap();
    assert_eq!((status, found["totalResults"].as_i64()), (StatusCode::OK, Some(1)));
    for scan in scans {
        let (status, body, retry_after) = scan.await.unwrap();
        match status {
            StatusCode::OK => assert_eq!(body["totalResults"], 3_000),
            StatusCode::SERVICE_UNAVAILABLE => assert!(retry_after.is_some(), "{body}"),
            other => panic!("an unindexed search answered {other}: {body}"),
        }
    }
    let order = finished.lock().unwrap().clone();
    let before = order.iter().position(|t| *t == "globex").unwrap();
    assert!(before <= 2, "globex's look-up waited behind {before} of acme's scans: {order:?}");
}
