//! The troubleshooter and "Test connection" through the real binary, against a fake Entra
//! issuer on 127.0.0.1; and `serve`'s token check never logging a token.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::daemon::Daemon;
use crate::support::fake_entra::{access_token_claims, FakeEntra, SigningKey};
use crate::support::*;
use crate::token_check::{changed, two_tenants, ADA_OID, APP_A, TENANT_A};

/// A project configured with [`two_tenants`] and Ada provisioned in acme.
async fn project(fake: &FakeEntra) -> Project {
    let project = Project::new(&two_tenants(fake));
    let added =
        cli(&project, &["members", "add", "--teamspace", "acme", "--oid", ADA_OID, "--email", "ada@contoso.com"], None)
            .await;
    added.expect(0);
    project
}

/// Runs the binary off the runtime's threads, so the in-process fake keeps answering.
async fn cli(project: &Project, args: &[&str], stdin: Option<String>) -> Run {
    let dir = project.dir.path().to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_binary(&dir, &args, stdin.as_deref().map(str::as_bytes))
    })
    .await
    .unwrap()
}

fn tenant_a_token(fake: &FakeEntra, key: &SigningKey, changes: &[(&str, Value)]) -> String {
    key.sign(&changed(access_token_claims(&fake.url(), TENANT_A, APP_A, ADA_OID, "mcp.access"), changes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_check_shows_each_check_and_the_fix() {
    let fake = FakeEntra::start().await;
    let key = SigningKey::new("key-a1", 0);
    fake.publish(TENANT_A, &key);
    let project = project(&fake).await;
    let good = tenant_a_token(&fake, &key, &[]);
    let signature = good.rsplit('.').next().unwrap().to_owned();

    let accepted = cli(&project, &["token", "check", "--teamspace", "acme"], Some(format!("{good}\n"))).await;
    accepted.expect(0);
    for expected in ["Header", "\"RS256\"", "Claims", "\"ada@contoso.com\"", "✓ signature", "✓ provisioned", "Accepted"]
    {
        assert!(accepted.stdout.contains(expected), "{expected:?} missing:\n{}", accepted.stdout);
    }
    assert!(!accepted.stdout.contains(&signature), "the signature is never printed");

    let wrong_audience = tenant_a_token(&fake, &key, &[("aud", json!("cccccccc-cccc-4ccc-8ccc-cccccccccccc"))]);
    let refused = cli(&project, &["token", "check", "--teamspace", "acme", "-"], Some(wrong_audience.clone())).await;
    refused.expect(4);
    assert!(refused.stdout.contains("✗ audience"), "{}", refused.stdout);
    assert!(refused.stdout.contains("fix: the token is for another app"), "{}", refused.stdout);
    assert!(refused.stdout.contains("Refused: wrong_audience."), "{}", refused.stdout);

    let json_run =
        cli(&project, &["token", "check", "--teamspace", "acme", "--format", "json", &wrong_audience], None).await;
    let report = json_run.expect(4).json();
    assert_eq!(report["accepted"], false);
    assert_eq!(report["reason"], "wrong_audience");
    assert_eq!(report["claims"]["oid"], ADA_OID);
    let checks = report["checks"].as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["check"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "format",
            "alg",
            "kid",
            "not_graph",
            "version",
            "tenant",
            "issuer",
            "audience",
            "expiry",
            "not_before",
            "signing_key",
            "signature",
            "oid",
            "scope",
            "provisioned"
        ]
    );
    let audience = &checks[7];
    assert_eq!((audience["ok"].clone(), audience["fix"].is_string()), (json!(false), true), "{audience}");
    for check in checks {
        let fields: std::collections::BTreeSet<&str> = check.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(fields, ["check", "detail", "fix", "ok"].into_iter().collect(), "{check}");
    }

    let unprovisioned = tenant_a_token(&fake, &key, &[("oid", json!("3f2504e0-4f89-41d3-9a0c-0305e82c33ff"))]);
    let run = cli(&project, &["token", "check", "--teamspace", "acme", "--format", "json"], Some(unprovisioned)).await;
    assert_eq!(run.expect(4).json()["reason"], "not_provisioned");

    let garbage = cli(&project, &["token", "check", "--teamspace", "acme"], Some("hello".into())).await;
    garbage.expect(4);
    assert!(garbage.stdout.contains("✗ format"), "{}", garbage.stdout);
    cli(&project, &["token", "check", "--teamspace", "initech"], Some(good)).await.expect(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_check_offline_and_with_entra_unreachable() {
    let fake = FakeEntra::start().await;
    let key = SigningKey::new("key-a1", 0);
    fake.publish(TENANT_A, &key);
    let project = project(&fake).await;
    let token = tenant_a_token(&fake, &key, &[]);
    fake.set_down(true);

    let offline = cli(&project, &["token", "check", "--teamspace", "acme", "--offline"], Some(token.clone())).await;
    offline.expect(0);
    assert!(offline.stdout.contains("signature was NOT checked (--offline)"), "{}", offline.stdout);
    assert_eq!(fake.discovery_fetches(TENANT_A), 0, "offline fetches nothing");
    let offline_json =
        cli(&project, &["token", "check", "--teamspace", "acme", "--offline", "--format", "json"], Some(token.clone()))
            .await;
    let report = offline_json.expect(0).json();
    assert_eq!(report["offline"], true);
    let signature = report["checks"].as_array().unwrap().iter().find(|c| c["check"] == "signature").unwrap();
    assert_eq!(signature["ok"], Value::Null);

    let undecided = cli(&project, &["token", "check", "--teamspace", "acme"], Some(token.clone())).await;
    undecided.expect(1);
    assert!(undecided.stdout.contains("Could not decide"), "{}", undecided.stdout);
    assert!(undecided.stdout.contains("503"), "the signing_key check says why: {}", undecided.stdout);
    // A refusal found before the signature is still a refusal.
    let expired = tenant_a_token(&fake, &key, &[("exp", json!(1_600_000_000))]);
    cli(&project, &["token", "check", "--teamspace", "acme"], Some(expired)).await.expect(4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teamspace_test_fetches_discovery_and_keys() {
    let fake = FakeEntra::start().await;
    fake.publish(TENANT_A, &SigningKey::new("key-a1", 0));
    fake.publish(TENANT_A, &SigningKey::new("key-a2", 1));
    let project = project(&fake).await;

    let ok = cli(&project, &["teamspace", "test", "acme"], None).await;
    ok.expect(0);
    assert!(ok.stdout.contains(&format!("{}/{TENANT_A}/v2.0 ✓", fake.url())), "{}", ok.stdout);
    assert!(ok.stdout.contains("2 signing keys (key-a1, key-a2)"), "{}", ok.stdout);
    let json_ok = cli(&project, &["teamspace", "test", "acme", "--format", "json"], None).await;
    let body = json_ok.expect(0).json();
    assert_eq!(body["discovery"]["key_ids"], json!(["key-a1", "key-a2"]));

    // globex's tenant is unknown to this authority: Entra's 400 AADSTS90002.
    let unknown = cli(&project, &["teamspace", "test", "globex"], None).await;
    unknown.expect(1);
    assert!(unknown.stdout.contains("FAILED") && unknown.stdout.contains("400"), "{}", unknown.stdout);

    fake.misstate_issuer(TENANT_A, "https://login.example.com/elsewhere/v2.0");
    let mismatch = cli(&project, &["teamspace", "test", "acme"], None).await;
    mismatch.expect(1);
    assert!(
        mismatch.stdout.contains("states issuer `https://login.example.com/elsewhere/v2.0`"),
        "{}",
        mismatch.stdout
    );

    fake.set_down(true);
    let down = cli(&project, &["teamspace", "test", "acme", "--format", "json"], None).await;
    assert_eq!(down.expect(1).json()["ok"], false);
    cli(&project, &["teamspace", "test", "initech"], None).await.expect(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_checks_tokens_without_an_admin_token_and_never_logs_one() {
    let fake = FakeEntra::start().await;
    let key = SigningKey::new("key-a1", 0);
    fake.publish(TENANT_A, &key);
    let project = project(&fake).await;
    let mut daemon = Daemon::start(project.dir.path(), &[], &[("RUST_LOG", "debug")]).await;
    assert_eq!(fake.discovery_fetches(TENANT_A), 0, "keys are fetched when first needed, not at start-up");
    let opened = daemon.logged("database opened");
    let database = if on_postgres() { project.database_url() } else { "sqlite://c7sync.db" };
    assert_eq!(opened[0]["fields"]["database"], database, "serve says which database it opened");
    let client = reqwest::Client::new();
    let good = tenant_a_token(&fake, &key, &[]);
    let forged =
        SigningKey::new("key-a1", 1).sign(&access_token_claims(&fake.url(), TENANT_A, APP_A, ADA_OID, "mcp.access"));
    let url = daemon.url("/v1/teamspaces/acme/authorize");
    assert_eq!(client.get(&url).bearer_auth(&good).send().await.unwrap().status(), 200);
    daemon.wait_for_log(Duration::from_secs(10), |l| daemon_message(l) == "signing keys fetched").await;
    assert_eq!(client.get(&url).bearer_auth(&forged).send().await.unwrap().status(), 401);
    // The admin API is off without C7SYNC_ADMIN_TOKEN, and says how to turn it on.
    let members = client.get(daemon.url("/v1/teamspaces/acme/members")).send().await.unwrap();
    assert_eq!(members.status(), 401);
    assert!(members.text().await.unwrap().contains("C7SYNC_ADMIN_TOKEN"));
    let refusal = daemon.wait_for_log(Duration::from_secs(10), |l| daemon_message(l) == "token refused").await;
    assert_eq!(refusal["fields"]["reason"], "bad_signature", "{refusal}");
    let (status, logs) = daemon.terminate(Duration::from_secs(10)).await;
    assert!(status.success());
    let text = serde_json::to_string(&logs).unwrap();
    for secret in [&good, &forged] {
        let signature = secret.rsplit('.').next().unwrap();
        assert!(!text.contains(signature), "a token's signature is in the log");
        assert!(!text.contains(secret.split('.').nth(1).unwrap()), "a token's payload is in the log");
    }
}

fn daemon_message(line: &Value) -> &str {
    crate::support::daemon::message(line)
}
