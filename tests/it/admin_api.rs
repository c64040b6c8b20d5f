//! The `/v1` write API on a real `c7sync serve`: members by hand, CSV imports with their plan,
//! guard and approval, SCIM tokens, delivery retries and the teamspace views — each the same
//! change the CLI makes, over real HTTP.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::daemon::Daemon;
use crate::support::fake_entra::{FakeEntra, SigningKey};
use crate::support::*;

const ADMIN_ENV: &str = "C7SYNC_ADMIN_TOKEN";
const ADMIN: &str = "write-api-admin-token";
const GRACE: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

/// acme (CSV source `hr`, 50% removal guard, SCIM) and its tenant on the fake Entra.
fn project(entra: &FakeEntra) -> Project {
    Project::new(&format!(
        r#"database = "sqlite://c7sync.db"

[server]
public_url = "https://id.contoso.com"

[[teamspaces]]
name = "acme"
tenant_id = "{TENANT}"
audience = "{AUDIENCE}"
authority_url = "{authority}"
max_removals = "50%"

  [[teamspaces.sources]]
  kind = "scim"

[[teamspaces]]
name = "globex"
tenant_id = "{TENANT}"
audience = "{AUDIENCE}"
authority_url = "http://127.0.0.1:9"
"#,
        authority = entra.url()
    ))
}

struct Admin {
    daemon: Daemon,
    client: reqwest::Client,
}

impl Admin {
    async fn start(project: &Project) -> Admin {
        let daemon = Daemon::start(project.dir.path(), &[], &[(ADMIN_ENV, ADMIN)]).await;
        Admin { daemon, client: reqwest::Client::new() }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.bearer_auth(ADMIN).send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.client.get(self.daemon.url(path))).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.client.post(self.daemon.url(path)).json(&body)).await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.client.delete(self.daemon.url(path))).await
    }

    async fn import(&self, query: &str, csv: &str) -> (StatusCode, Value) {
        let url = self.daemon.url(&format!("/v1/teamspaces/acme/imports?{query}"));
        self.send(self.client.post(url).header("content-type", "text/csv").body(csv.to_owned())).await
    }

    async fn member_emails(&self) -> Vec<String> {
        let (status, body) = self.get("/v1/teamspaces/acme/members").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["members"].as_array().unwrap().iter().map(|m| m["email"].as_str().unwrap().to_owned()).collect()
    }
}

fn rows(range: std::ops::Range<u128>) -> String {
    let mut csv = String::from("email,oid,display_name\n");
    for n in range {
        csv.push_str(&format!("dev{n}@contoso.com,{},Dev {n}\n", oid(n)));
    }
    csv
}

#[tokio::test(flavor = "multi_thread")]
async fn members_are_added_and_removed_by_hand_idempotently_with_the_bad_field_named() {
    let entra = FakeEntra::start().await;
    let project = project(&entra);
    let api = Admin::start(&project).await;

    let ada = json!({ "oid": ADA, "email": "ada@contoso.com", "display_name": "Ada Lovelace" });
    let (status, added) = api.post("/v1/teamspaces/acme/members", ada.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added["result"], "added");
    assert_eq!(added["outcome"], "applied");
    let (status, again) = api.post("/v1/teamspaces/acme/members", ada).await;
    assert_eq!((status, again["result"].as_str()), (StatusCode::OK, Some("unchanged")), "{again}");
    assert_eq!(api.member_emails().await, ["ada@contoso.com"]);

    let (status, bad) = api.post("/v1/teamspaces/acme/members", json!({ "oid": GRACE, "email": "not an email" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    assert_eq!(bad["error"]["field"], "email");
    let (status, bad) = api.post("/v1/teamspaces/acme/members", json!({ "oid": "12", "email": "g@contoso.com" })).await;
    assert_eq!((status, bad["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("oid")), "{bad}");
    let (status, bad) = api.post("/v1/teamspaces/acme/members", json!({ "email": "g@contoso.com" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a body without oid: {bad}");
    assert!(bad["error"]["message"].as_str().unwrap().contains("oid"), "{bad}");
    let (status, _) = api.post("/v1/teamspaces/nope/members", json!({ "oid": GRACE, "email": "g@contoso.com" })).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The change is the manual source's, on record like `members add`.
    let audit = project.run(&["audit", "--teamspace", "acme", "--format", "json"]).expect(0).stdout.clone();
    assert!(audit.contains("ada@contoso.com") && audit.contains("manual"), "{audit}");

    let (status, removed) = api.delete(&format!("/v1/teamspaces/acme/members/{ADA}")).await;
    assert_eq!((status, removed["result"].as_str()), (StatusCode::OK, Some("removed")), "{removed}");
    assert!(api.member_emails().await.is_empty());
    let (status, gone) = api.delete(&format!("/v1/teamspaces/acme/members/{ADA}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{gone}");

    // Without the admin token nothing is written.
    let anonymous = api.client.post(api.daemon.url("/v1/teamspaces/acme/members")).json(&json!({})).send().await;
    assert_eq!(anonymous.unwrap().status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_is_planned_refused_for_bad_rows_applied_held_and_approved() {
    let entra = FakeEntra::start().await;
    let project = project(&entra);
    let api = Admin::start(&project).await;

    let (status, plan) = api.import("source=hr&dry_run=true", &rows(1..5)).await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    assert_eq!((plan["outcome"].as_str(), plan["added"].as_u64()), (Some("dry_run"), Some(4)), "{plan}");
    assert_eq!(plan["changes"].as_array().unwrap().len(), 4);
    assert!(api.member_emails().await.is_empty(), "a dry run changes nothing");

    let bad = format!("{}not-an-email,{},X\n", rows(1..3), oid(9));
    let (status, refused) = api.import("source=hr", &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["invalid"][0]["line"], 4, "{refused}");
    assert_eq!(refused["invalid"][0]["field"], "email", "{refused}");
    assert_eq!(refused["error"]["code"], "invalid_rows");
    assert!(api.member_emails().await.is_empty(), "nothing half-applied");

    let (status, empty) = api.import("source=hr", "email,oid\n").await;
    assert_eq!((status, empty["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("file")), "{empty}");
    let (status, _) = api.import("source=no%20spaces", &rows(1..2)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = api.import("mode=sideways", &rows(1..2)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, applied) = api.import("source=hr&mode=merge", &rows(1..5)).await;
    assert_eq!((status, applied["outcome"].as_str()), (StatusCode::OK, Some("applied")), "{applied}");
    assert_eq!(api.member_emails().await.len(), 4);

    // Replacing 4 with 1 removes 75%: over acme's 50% guard, so the run is held.
    let (status, held) = api.import("source=hr&mode=replace", &rows(1..2)).await;
    assert_eq!((status, held["outcome"].as_str()), (StatusCode::OK, Some("aborted")), "{held}");
    let held_id = held["run_id"].as_i64().unwrap();
    let (_, acme) = api.get("/v1/teamspaces/acme").await;
    assert_eq!(acme["held_runs"][0]["run_id"], held_id, "{acme}");
    assert_eq!(api.member_emails().await.len(), 4, "a held run changes nothing");

    let (status, approved) = api.post(&format!("/v1/runs/{held_id}/approve"), json!({})).await;
    assert_eq!((status, approved["outcome"].as_str()), (StatusCode::OK, Some("applied")), "{approved}");
    assert_eq!(approved["removed"], 3);
    assert_eq!(api.member_emails().await, ["dev1@contoso.com"]);
    let (status, twice) = api.post(&format!("/v1/runs/{held_id}/approve"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{twice}");
    let (status, _) = api.post("/v1/runs/99999/approve", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, acme) = api.get("/v1/teamspaces/acme").await;
    assert_eq!(acme["members"], 1);
    assert!(acme["held_runs"].as_array().unwrap().is_empty(), "{acme}");
    let hr = acme["sources"].as_array().unwrap().iter().find(|s| s["source"] == "csv:hr").unwrap();
    assert_eq!(hr["last_outcome"], "applied", "{acme}");
}

#[tokio::test(flavor = "multi_thread")]
async fn scim_tokens_are_shown_once_and_revoked_and_teamspaces_test_their_tenant() {
    let entra = FakeEntra::start().await;
    entra.publish(TENANT, &SigningKey::new("key-1", 0));
    let project = project(&entra);
    let api = Admin::start(&project).await;

    let (status, created) = api.post("/v1/teamspaces/acme/scim-tokens", json!({ "label": "entra app" })).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["tenant_url"], "https://id.contoso.com/scim/v2");
    let value = created["value"].as_str().unwrap().to_owned();
    let users = api.daemon.url("/scim/v2/Users");
    assert_eq!(api.client.get(&users).bearer_auth(&value).send().await.unwrap().status(), StatusCode::OK);
    let (_, listed) = api.get("/v1/teamspaces/acme/scim-tokens").await;
    assert_eq!(listed["tokens"][0]["label"], "entra app");
    assert!(!listed.to_string().contains(&value), "the value is shown once, never listed");

    let (status, refused) = api.post("/v1/teamspaces/globex/scim-tokens", json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "globex has no SCIM source: {refused}");
    let id = created["id"].as_i64().unwrap();
    let (status, _) = api.delete(&format!("/v1/teamspaces/globex/scim-tokens/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a token is revoked through its own teamspace");
    let (status, _) = api.delete(&format!("/v1/teamspaces/acme/scim-tokens/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while api.client.get(&users).bearer_auth(&value).send().await.unwrap().status() != StatusCode::UNAUTHORIZED {
        assert!(std::time::Instant::now() < deadline, "a revoked token still works");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let (status, tested) = api.post("/v1/teamspaces/acme/test", json!({})).await;
    assert_eq!((status, tested["ok"].as_bool()), (StatusCode::OK, Some(true)), "{tested}");
    assert_eq!(tested["discovery"]["key_ids"][0], "key-1");
    let (_, unreachable) = api.post("/v1/teamspaces/globex/test", json!({})).await;
    assert_eq!(unreachable["ok"], false, "{unreachable}");
    assert!(unreachable["error"].as_str().unwrap().contains("127.0.0.1:9"), "{unreachable}");

    let (status, teamspaces) = api.get("/v1/teamspaces").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<_> = teamspaces["teamspaces"].as_array().unwrap().iter().map(|t| t["name"].clone()).collect();
    assert_eq!(names, [json!("acme"), json!("globex")]);
    assert_eq!(teamspaces["teamspaces"][0]["tenant"]["tenant_id"], TENANT);

    let (status, events) = api.get("/v1/events?status=dead").await;
    assert_eq!((status, events["events"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)), "{events}");
    let (status, _) = api.get("/v1/events?status=lost").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = api.post("/v1/events/1/retry", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "only a dead event can be retried");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_write_route_is_in_the_openapi_document() {
    let entra = FakeEntra::start().await;
    let api = Admin::start(&project(&entra)).await;
    let (status, openapi) = api.get("/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    for (path, method) in [
        ("/teamspaces", "get"),
        ("/teamspaces/{teamspace}", "get"),
        ("/teamspaces/{teamspace}/test", "post"),
        ("/teamspaces/{teamspace}/members", "post"),
        ("/teamspaces/{teamspace}/members/{oid}", "delete"),
        ("/teamspaces/{teamspace}/imports", "post"),
        ("/runs/{run}/approve", "post"),
        ("/teamspaces/{teamspace}/scim-tokens", "get"),
        ("/teamspaces/{teamspace}/scim-tokens", "post"),
        ("/teamspaces/{teamspace}/scim-tokens/{id}", "delete"),
        ("/events", "get"),
        ("/events/{event}/retry", "post"),
    ] {
        assert!(openapi["paths"][path][method].is_object(), "{method} {path} is documented");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_event_is_listed_and_retried_until_it_is_delivered() {
    const SECRET_ENV: &str = "C7SYNC_TEST_WEBHOOK_SECRET";
    const SECRET: &str = "whsec_admin_api_test";
    let receiver = crate::support::receiver::Receiver::start(SECRET.as_bytes()).await;
    receiver.state.lock().unwrap().always = Some(410);
    let entra = FakeEntra::start().await;
    let project = project(&entra);
    let config = std::fs::read_to_string(project.path("c7sync.toml")).unwrap();
    project.write_config(&format!(
        "{config}\n[delivery]\nwebhook_url = \"{}\"\nsigning_secret_env = \"{SECRET_ENV}\"\n",
        receiver.url()
    ));
    let daemon = Daemon::start(project.dir.path(), &[], &[(ADMIN_ENV, ADMIN), (SECRET_ENV, SECRET)]).await;
    let api = Admin { daemon, client: reqwest::Client::new() };

    let (status, _) = api.post("/v1/teamspaces/acme/members", json!({ "oid": ADA, "email": "ada@contoso.com" })).await;
    assert_eq!(status, StatusCode::CREATED);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let dead = loop {
        let (_, body) = api.get("/v1/events?status=dead&teamspace=acme").await;
        if let Some(event) = body["events"].as_array().and_then(|e| e.first()).cloned() {
            break event;
        }
        assert!(std::time::Instant::now() < deadline, "the receiver's 410 never made the event dead");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(dead["oid"], ADA, "{dead}");
    assert_eq!(dead["status"], "dead");

    receiver.state.lock().unwrap().always = None;
    let id = dead["id"].as_i64().unwrap();
    let (status, retried) = api.post(&format!("/v1/events/{id}/retry"), json!({})).await;
    assert_eq!((status, retried["status"].as_str()), (StatusCode::OK, Some("pending")), "{retried}");
    // The receiver sees the event before the deliverer records its answer, so the test waits
    // for the record, which is what an operator reads.
    loop {
        let (_, delivered) = api.get("/v1/events?status=delivered").await;
        if delivered["events"].as_array().unwrap().iter().any(|e| e["id"] == id) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the retried event was never marked delivered: {delivered}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(receiver.ids().contains(&id), "the receiver got the retried event");
}
