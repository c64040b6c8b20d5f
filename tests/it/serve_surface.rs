//! What `serve` shows, and to whom: `/metrics` behind an optional token, SCIM locations from
//! the configured public URL (never from a client's `Host`), and a SCIM token's last use.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::daemon::Daemon;
use crate::support::*;

const SCIM: &str = "\n  [[teamspaces.sources]]\n  kind = \"scim\"\n";

#[tokio::test(flavor = "multi_thread")]
async fn metrics_need_the_metrics_token_once_one_is_set() {
    let project = acme_project(SCIM);
    let daemon = Daemon::start(project.dir.path(), &[], &[("C7SYNC_METRICS_TOKEN", "m3trics-only")]).await;
    let client = reqwest::Client::new();
    let url = daemon.url("/metrics");
    assert_eq!(client.get(&url).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(client.get(&url).bearer_auth("wrong").send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let scraped = client.get(&url).bearer_auth("m3trics-only").send().await.unwrap();
    assert_eq!(scraped.status(), StatusCode::OK);
    assert!(scraped.text().await.unwrap().contains("teamspace=\"acme\""));
    // Probes stay open: they show no names.
    assert_eq!(client.get(daemon.url("/readyz")).send().await.unwrap().status(), StatusCode::OK);
    assert!(!daemon.logs().iter().any(|l| l.to_string().contains("m3trics-only")), "the token is never logged");
}

async fn created_location(daemon: &Daemon, token: &str, host: &str) -> String {
    let body = serde_json::json!({"userName": format!("{}@contoso.com", host.len()), "active": true});
    let response = reqwest::Client::new()
        .post(daemon.url("/scim/v2/Users"))
        .bearer_auth(token)
        .header("host", host)
        .header("content-type", "application/scim+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let header = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["meta"]["location"], header.as_str());
    header
}

#[tokio::test(flavor = "multi_thread")]
async fn locations_come_from_the_public_url_not_from_the_host_header() {
    let project = acme_project(&format!("{SCIM}\n[server]\npublic_url = \"https://id.contoso.com/c7sync/\"\n"));
    let token = project.run(&["scim-token", "create", "--teamspace", "acme"]).expect(0).stdout.trim().to_owned();
    let daemon = Daemon::start(project.dir.path(), &[], &[]).await;
    let location = created_location(&daemon, &token, "attacker.example").await;
    assert!(location.starts_with("https://id.contoso.com/c7sync/scim/v2/Users/"), "{location}");

    let open = acme_project(SCIM);
    let token = open.run(&["scim-token", "create", "--teamspace", "acme"]).expect(0).stdout.trim().to_owned();
    let daemon = Daemon::start(open.dir.path(), &[], &[]).await;
    let echoed = created_location(&daemon, &token, "c7sync.internal:8787").await;
    assert!(echoed.starts_with("http://c7sync.internal:8787/scim/v2/Users/"), "{echoed}");
    let odd = created_location(&daemon, &token, "evil.example/\"><script>").await;
    assert!(odd.starts_with("http://localhost/scim/v2/Users/"), "a Host that is not a plain host is not echoed: {odd}");
}

fn last_used(project: &Project) -> Option<String> {
    let tokens = project.run(&["scim-token", "list", "--format", "json"]).expect(0).json();
    tokens[0]["last_used_at"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tokens_last_use_is_recorded_coarsely() {
    let project = acme_project(SCIM);
    let token = project.run(&["scim-token", "create", "--teamspace", "acme"]).expect(0).stdout.trim().to_owned();
    assert_eq!(last_used(&project), None);
    let daemon = Daemon::start(project.dir.path(), &[], &[]).await;
    let client = reqwest::Client::new();
    let list = || client.get(daemon.url("/scim/v2/Users")).bearer_auth(&token).send();
    assert_eq!(list().await.unwrap().status(), StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        if let Some(at) = last_used(&project) {
            break at;
        }
        assert!(Instant::now() < deadline, "LAST USED was not recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for _ in 0..20 {
        assert_eq!(list().await.unwrap().status(), StatusCode::OK);
    }
    assert!(first.ends_with(":00.000Z"), "kept to the minute: {first}");
    assert_eq!(last_used(&project), Some(first), "one write per minute at most, not one per request");
}
