//! The whole token check over real HTTP: tokens signed as Entra signs them, keys from a fake
//! Entra issuer on 127.0.0.1 (rotation, outages), members in a real SQLite file.

use std::time::{Duration, Instant};

use c7sync::clock::{Clock, Millis};
use c7sync::plan::{Delta, Desired, DesiredClaim};
use c7sync::token::KeySettings;
use serde_json::{json, Value};

use crate::support::fake_entra::{access_token_claims, FakeEntra, SigningKey};
use crate::support::token_app::TokenApp;
use crate::support::*;

pub const TENANT_A: &str = "11111111-1111-4111-8111-111111111111";
pub const TENANT_B: &str = "22222222-2222-4222-8222-222222222222";
pub const APP_A: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";
pub const APP_B: &str = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb";
pub const ADA_OID: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
const ADMIN: &str = "admin-secret-for-token-tests";

/// Two teamspaces on two tenants, both trusting `fake`; acme names a resource metadata URL.
pub fn two_tenants(fake: &FakeEntra) -> String {
    format!(
        r#"database = "sqlite://c7sync.db"

[[teamspaces]]
name = "acme"
tenant_id = "{TENANT_A}"
audience = "{APP_A}"
authority_url = "{url}"
resource_metadata_url = "https://mcp.acme.example/.well-known/oauth-protected-resource"

[[teamspaces]]
name = "globex"
tenant_id = "{TENANT_B}"
audience = "{APP_B}"
authority_url = "{url}"
"#,
        url = fake.url()
    )
}

struct Setup {
    fake: FakeEntra,
    app: TokenApp,
    key: SigningKey,
}

impl Setup {
    async fn start() -> Setup {
        Setup::with(KeySettings::default(), Clock::System).await
    }

    async fn with(settings: KeySettings, clock: Clock) -> Setup {
        let fake = FakeEntra::start().await;
        let key = SigningKey::new("key-a1", 0);
        fake.publish(TENANT_A, &key);
        fake.publish(TENANT_B, &SigningKey::new("key-b1", 2));
        let app = TokenApp::start(&two_tenants(&fake), Some(ADMIN), settings, clock).await;
        provision(&app, "acme", ADA_OID).await;
        Setup { fake, app, key }
    }

    fn claims(&self) -> Value {
        access_token_claims(&self.fake.url(), TENANT_A, APP_A, ADA_OID, "mcp.access")
    }

    fn token(&self, changes: &[(&str, Value)]) -> String {
        self.key.sign(&changed(self.claims(), changes))
    }
}

/// `claims` with `changes` made: a `null` removes the claim.
pub fn changed(mut claims: Value, changes: &[(&str, Value)]) -> Value {
    for (name, value) in changes {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(*name);
        } else {
            claims[*name] = value.clone();
        }
    }
    claims
}

/// Adds `oid` to `teamspace` through the manual source, as `members add` does.
pub async fn provision(app: &TokenApp, teamspace: &str, oid: &str) {
    let claim = DesiredClaim {
        oid: oid.parse().unwrap(),
        email: "ada@contoso.com".parse().unwrap(),
        display_name: "Ada Lovelace".parse().ok(),
    };
    app.reconciler.run(&request(teamspace, "manual"), Desired::Deltas(vec![Delta::Upsert(claim)])).await.unwrap();
}

async fn unprovision(app: &TokenApp, teamspace: &str, oid: &str) {
    app.reconciler
        .run(&request(teamspace, "manual"), Desired::Deltas(vec![Delta::Drop(oid.parse().unwrap())]))
        .await
        .unwrap();
}

/// Status, `WWW-Authenticate`, and the body's error code (or the whole body on 200).
async fn answer(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let challenge =
        response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let body: Value = response.json().await.unwrap();
    (status, challenge, body)
}

fn unsigned(header: Value, claims: &Value) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    format!("{}.{}.", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()))
}

#[tokio::test]
async fn a_good_token_is_accepted_with_who_it_is() {
    let setup = Setup::start().await;
    let token = setup.token(&[]);
    let response = setup.app.authorize("acme", Some(&token)).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["x-c7sync-teamspace"], "acme");
    assert_eq!(headers["x-c7sync-tenant-id"], TENANT_A);
    assert_eq!(headers["x-c7sync-oid"], ADA_OID);
    assert_eq!(headers["x-c7sync-email"], "ada@contoso.com");
    assert_eq!(headers["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["teamspace"], "acme");
    assert_eq!(body["oid"], ADA_OID);
    assert_eq!(body["display_name"], "Ada Lovelace");
    assert_eq!(body["scopes"], json!(["mcp.access"]));
    let exp = setup.claims()["exp"].as_i64().unwrap();
    assert_eq!(body["expires_at"], Millis(exp * 1000).to_string());
    // Gateways forwarding the original path (Envoy ext_authz) and method get the same answer.
    let forwarded = setup
        .app
        .client
        .post(setup.app.url("/v1/teamspaces/acme/authorize/mcp/v1/messages"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(forwarded.status(), 200);
}

#[tokio::test]
async fn every_refusal_has_its_reason_and_status() {
    let setup = Setup::start().await;
    let base = setup.fake.url();
    let other_tenant = "99999999-9999-4999-8999-999999999999";
    let hs256 = {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some("key-a1".into());
        jsonwebtoken::encode(&header, &setup.claims(), &jsonwebtoken::EncodingKey::from_secret(b"k")).unwrap()
    };
    let forged = SigningKey::new("key-a1", 1).sign(&setup.claims());
    let unknown = SigningKey::new("key-never-published", 0).sign(&setup.claims());
    let now = chrono::Utc::now().timestamp();
    let cases: Vec<(&str, String, u16)> = vec![
        ("malformed", "not-a-jwt".into(), 401),
        ("malformed", setup.token(&[("exp", Value::Null)]), 401),
        ("malformed", setup.token(&[("nbf", Value::Null)]), 401),
        ("unsupported_alg", hs256, 401),
        ("unsupported_alg", unsigned(json!({"alg": "none", "kid": "key-a1"}), &setup.claims()) + "x", 401),
        (
            "graph_audience",
            setup.token(&[("aud", json!("00000003-0000-0000-c000-000000000000")), ("scp", json!("User.Read"))]),
            401,
        ),
        (
            "v1_token",
            setup.token(&[("iss", json!(format!("https://sts.windows.net/{TENANT_A}/"))), ("ver", json!("1.0"))]),
            401,
        ),
        (
            "wrong_tenant",
            setup.token(&[("tid", json!(other_tenant)), ("iss", json!(format!("{base}/{other_tenant}/v2.0")))]),
            401,
        ),
        ("wrong_issuer", setup.token(&[("iss", json!(format!("https://login.example.com/{TENANT_A}/v2.0")))]), 401),
        ("wrong_issuer", setup.token(&[("iss", Value::Null)]), 401),
        ("wrong_audience", setup.token(&[("aud", json!("cccccccc-cccc-4ccc-8ccc-cccccccccccc"))]), 401),
        ("wrong_audience", setup.token(&[("aud", Value::Null)]), 401),
        ("expired", setup.token(&[("exp", json!(now - 600))]), 401),
        ("not_yet_valid", setup.token(&[("nbf", json!(now + 600))]), 401),
        ("bad_signature", forged, 401),
        ("unknown_key", unknown, 401),
        ("missing_oid", setup.token(&[("oid", Value::Null)]), 401),
        ("missing_scope", setup.token(&[("scp", json!("openid profile"))]), 403),
        ("not_provisioned", setup.token(&[("oid", json!("3f2504e0-4f89-41d3-9a0c-0305e82c33ff"))]), 403),
    ];
    for (code, token, status) in cases {
        let (got, challenge, body) = answer(setup.app.authorize("acme", Some(&token)).await).await;
        assert_eq!((got, body["error"]["code"].as_str().unwrap_or_default()), (status, code), "{body}");
        assert!(body["error"]["fix"].as_str().is_some_and(|f| f.len() > 20), "{code}: {body}");
        match code {
            "missing_scope" => {
                assert!(challenge.starts_with("Bearer error=\"insufficient_scope\""), "{challenge}");
                assert!(challenge.contains("scope=\"mcp.access\""), "{challenge}");
            }
            "not_provisioned" => assert_eq!(challenge, "", "a valid token gets no challenge"),
            _ => {
                assert!(challenge.starts_with("Bearer error=\"invalid_token\""), "{code}: {challenge}");
                assert!(challenge.contains(&format!("error_description=\"{code}: ")), "{challenge}");
                assert!(
                    challenge.ends_with(
                        "resource_metadata=\"https://mcp.acme.example/.well-known/oauth-protected-resource\""
                    ),
                    "{challenge}"
                );
            }
        }
    }
}

#[tokio::test]
async fn no_token_gets_a_bare_challenge() {
    let setup = Setup::start().await;
    let (status, challenge, _) = answer(setup.app.authorize("globex", None).await).await;
    assert_eq!((status, challenge.as_str()), (401, "Bearer"));
    // acme names its resource metadata, the MCP discovery hint.
    let (status, challenge, _) = answer(setup.app.authorize("acme", None).await).await;
    assert_eq!(status, 401);
    assert_eq!(challenge, "Bearer resource_metadata=\"https://mcp.acme.example/.well-known/oauth-protected-resource\"");
    let basic = setup.app.client.get(setup.app.url("/v1/teamspaces/globex/authorize")).basic_auth("u", Some("p"));
    assert_eq!(answer(basic.send().await.unwrap()).await.1, "Bearer");
    let (status, _, body) = answer(setup.app.authorize("initech", Some("x.y.z")).await).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("teamspace_not_found")));
}

#[tokio::test]
async fn two_teamspaces_on_two_tenants_are_isolated() {
    let setup = Setup::start().await;
    provision(&setup.app, "globex", ADA_OID).await;
    let acme_token = setup.token(&[]);
    let globex_claims = access_token_claims(&setup.fake.url(), TENANT_B, APP_B, ADA_OID, "mcp.access");
    let globex_token = SigningKey::new("key-b1", 2).sign(&globex_claims);
    let code = |r: (u16, String, Value)| (r.0, r.2["error"]["code"].as_str().unwrap_or("accepted").to_owned());
    assert_eq!(code(answer(setup.app.authorize("acme", Some(&acme_token)).await).await), (200, "accepted".into()));
    assert_eq!(code(answer(setup.app.authorize("globex", Some(&globex_token)).await).await), (200, "accepted".into()));
    assert_eq!(
        code(answer(setup.app.authorize("globex", Some(&acme_token)).await).await),
        (401, "wrong_tenant".into())
    );
    assert_eq!(
        code(answer(setup.app.authorize("acme", Some(&globex_token)).await).await),
        (401, "wrong_tenant".into())
    );
    // Tenant B's key does not sign for tenant A, even with A's claims.
    let cross = SigningKey::new("key-b1", 2).sign(&setup.claims());
    assert_eq!(code(answer(setup.app.authorize("acme", Some(&cross)).await).await), (401, "unknown_key".into()));
}

#[tokio::test]
async fn a_removed_member_is_refused_within_a_second() {
    let setup = Setup::start().await;
    let token = setup.token(&[]);
    assert_eq!(setup.app.authorize("acme", Some(&token)).await.status(), 200);
    // The decision is now cached; stage 2 must still follow the member list.
    assert_eq!(setup.app.authorize("acme", Some(&token)).await.status(), 200);
    unprovision(&setup.app, "acme", ADA_OID).await;
    let removed = Instant::now();
    loop {
        let (status, _, body) = answer(setup.app.authorize("acme", Some(&token)).await).await;
        if status == 403 {
            assert_eq!(body["error"]["code"], "not_provisioned");
            break;
        }
        assert!(removed.elapsed() < Duration::from_secs(1), "still accepted {:?} after removal", removed.elapsed());
        tokio::task::yield_now().await;
    }
    provision(&setup.app, "acme", ADA_OID).await;
    let added = Instant::now();
    while setup.app.authorize("acme", Some(&token)).await.status() != 200 {
        assert!(added.elapsed() < Duration::from_secs(1), "not accepted {:?} after provisioning", added.elapsed());
    }
}

#[tokio::test]
async fn cached_members_are_not_trusted_while_the_member_list_cannot_be_read() {
    let setup = Setup::start().await;
    let token = setup.token(&[]);
    assert_eq!(setup.app.authorize("acme", Some(&token)).await.status(), 200);
    assert_eq!(setup.app.authorize("acme", Some(&token)).await.status(), 200, "now from the caches");
    // The database goes away: a removal there could no longer be seen, so the cached "member"
    // must not keep answering 200 — the check cannot decide (503) until it can read again.
    setup.app.reconciler.store().close().await;
    let closed = Instant::now();
    loop {
        let response = setup.app.authorize("acme", Some(&token)).await;
        if response.status() == 503 {
            assert!(response.headers().contains_key("retry-after"));
            break;
        }
        assert_eq!(response.status(), 200);
        assert!(
            closed.elapsed() < Duration::from_secs(5),
            "still accepted {:?} after the store closed",
            closed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_with_one_refetch() {
    let setup = Setup::start().await;
    assert_eq!(setup.app.authorize("acme", Some(&setup.token(&[]))).await.status(), 200);
    let fetched = setup.fake.key_fetches(TENANT_A);
    // Entra publishes the next key, then starts signing with it.
    let next = SigningKey::new("key-a2", 1);
    setup.fake.publish(TENANT_A, &next);
    let token = next.sign(&setup.claims());
    assert_eq!(setup.app.authorize("acme", Some(&token)).await.status(), 200);
    assert_eq!(setup.fake.key_fetches(TENANT_A), fetched + 1);
    // The old key retires; tokens it signed still verify until the keys are refreshed.
    setup.fake.retire(TENANT_A, "key-a1");
    assert_eq!(setup.app.authorize("acme", Some(&setup.token(&[("jti", json!("x"))]))).await.status(), 200);
    assert_eq!(setup.fake.key_fetches(TENANT_A), fetched + 1);
}

#[tokio::test]
async fn a_flood_of_unknown_keys_causes_one_refetch_per_interval() {
    let clock = Clock::manual(Millis::now());
    let setup = Setup::with(KeySettings::default(), clock.clone()).await;
    assert_eq!(setup.app.authorize("acme", Some(&setup.token(&[]))).await.status(), 200);
    let fetched = setup.fake.key_fetches(TENANT_A);
    let forged: Vec<String> =
        (0..200).map(|n| SigningKey::new(&format!("forged-{n}"), 3).sign(&setup.claims())).collect();
    let answers = futures_util::future::join_all(forged.iter().map(|t| setup.app.authorize("acme", Some(t)))).await;
    for response in answers {
        assert_eq!(answer(response).await.2["error"]["code"], "unknown_key");
    }
    assert_eq!(setup.fake.key_fetches(TENANT_A), fetched + 1, "200 unknown kids, one refetch");
    // A key published now is not seen until the 5-minute window has passed.
    let next = SigningKey::new("key-a2", 1);
    setup.fake.publish(TENANT_A, &next);
    let token = next.sign(&setup.claims());
    assert_eq!(answer(setup.app.authorize("acme", Some(&token)).await).await.2["error"]["code"], "unknown_key");
    clock.advance(Duration::from_secs(299));
    assert_eq!(answer(setup.app.authorize("acme", Some(&token)).await).await.2["error"]["code"], "unknown_key");
    assert_eq!(setup.fake.key_fetches(TENANT_A), fetched + 1);
    clock.advance(Duration::from_secs(1));
    assert_eq!(setup.app.authorize("acme", Some(&token)).await.status(), 200);
    assert_eq!(setup.fake.key_fetches(TENANT_A), fetched + 2);
}

#[tokio::test]
async fn an_outage_with_keys_cached_still_answers() {
    let clock = Clock::manual(Millis::now());
    let setup = Setup::with(KeySettings::default(), clock.clone()).await;
    assert_eq!(setup.app.authorize("acme", Some(&setup.token(&[]))).await.status(), 200);
    setup.fake.set_down(true);
    // The background refresh comes due and fails: the last good keys stay.
    clock.advance(Duration::from_secs(3601));
    let asked = setup.fake.discovery_fetches(TENANT_A);
    setup.app.tokens.keys().refresh_due().await;
    assert_eq!(setup.fake.discovery_fetches(TENANT_A), asked + 1, "the refresh was tried");
    let fresh = setup.token(&[("jti", json!("after-outage"))]);
    assert_eq!(setup.app.authorize("acme", Some(&fresh)).await.status(), 200);
    // A token with an unknown key is refused as such, not as an outage.
    let forged = SigningKey::new("forged", 3).sign(&setup.claims());
    assert_eq!(answer(setup.app.authorize("acme", Some(&forged)).await).await.2["error"]["code"], "unknown_key");
}

#[tokio::test]
async fn an_outage_before_any_keys_answers_503_until_entra_is_back() {
    let clock = Clock::manual(Millis::now());
    let fake = FakeEntra::start().await;
    let key = SigningKey::new("key-a1", 0);
    fake.publish(TENANT_A, &key);
    fake.set_down(true);
    let app = TokenApp::start(&two_tenants(&fake), Some(ADMIN), KeySettings::default(), clock.clone()).await;
    provision(&app, "acme", ADA_OID).await;
    let token = key.sign(&access_token_claims(&fake.url(), TENANT_A, APP_A, ADA_OID, "mcp.access"));
    for _ in 0..5 {
        let response = app.authorize("acme", Some(&token)).await;
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "10");
    }
    // Asked five times within the retry interval, Entra was tried once.
    assert_eq!(fake.key_fetches(TENANT_A) + fake.discovery_fetches(TENANT_A), 1);
    let introspected = app
        .client
        .post(app.url("/v1/introspect"))
        .bearer_auth(ADMIN)
        .form(&[("token", token.as_str()), ("teamspace", "acme")])
        .send()
        .await
        .unwrap();
    assert_eq!(introspected.status(), 503, "undecided is not `active: false`");
    fake.set_down(false);
    assert_eq!(app.authorize("acme", Some(&token)).await.status(), 503, "retried only after the interval");
    clock.advance(Duration::from_secs(10));
    assert_eq!(app.authorize("acme", Some(&token)).await.status(), 200);
}

#[tokio::test]
async fn introspection_follows_rfc_7662() {
    let setup = Setup::start().await;
    let token = setup.token(&[]);
    let introspect = |auth: Option<&str>, form: Vec<(&str, String)>| {
        let mut request = setup.app.client.post(setup.app.url("/v1/introspect")).form(&form);
        if let Some(auth) = auth {
            request = request.bearer_auth(auth);
        }
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let form = |token: &str| vec![("token", token.to_owned())];
    assert_eq!(introspect(None, form(&token)).await.0, 401);
    assert_eq!(introspect(Some("wrong"), form(&token)).await.0, 401);
    // The developer's own token is not the caller's credential.
    assert_eq!(introspect(Some(&token), form(&token)).await.0, 401);

    let (status, body) = introspect(Some(ADMIN), form(&token)).await;
    assert_eq!(status, 200, "{body}");
    let claims = setup.claims();
    assert_eq!(body["active"], true);
    assert_eq!(body["teamspace"], "acme", "found by tenant and audience");
    for (field, expected) in [
        ("sub", claims["sub"].clone()),
        ("oid", json!(ADA_OID)),
        ("tid", json!(TENANT_A)),
        ("email", json!("ada@contoso.com")),
        ("scope", json!("mcp.access")),
        ("client_id", claims["azp"].clone()),
        ("iss", claims["iss"].clone()),
        ("aud", json!(APP_A)),
        ("exp", claims["exp"].clone()),
        ("iat", claims["iat"].clone()),
        ("token_type", json!("Bearer")),
    ] {
        assert_eq!(body[field], expected, "{field}: {body}");
    }
    for bad in [setup.token(&[("exp", json!(1))]), "garbage".to_owned(), setup.token(&[("scp", json!("x"))])] {
        let (status, body) = introspect(Some(ADMIN), form(&bad)).await;
        assert_eq!((status, body), (200, json!({"active": false})));
    }
    // Named explicitly for the wrong teamspace: inactive there.
    let (_, body) = introspect(Some(ADMIN), vec![("token", token.clone()), ("teamspace", "globex".into())]).await;
    assert_eq!(body, json!({"active": false}));
    let (status, body) = introspect(Some(ADMIN), vec![("teamspace", "acme".into())]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")));
    let (status, body) = introspect(Some(ADMIN), vec![("token", token.clone()), ("teamspace", "initech".into())]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("teamspace_not_found")));

    let openapi: Value =
        setup.app.client.get(setup.app.url("/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(openapi["paths"]["/introspect"]["post"].is_object());
    assert!(openapi["paths"]["/teamspaces/{teamspace}/authorize"]["get"]["responses"]["503"].is_object());
}

#[tokio::test]
async fn introspection_asks_which_teamspace_when_several_match() {
    let fake = FakeEntra::start().await;
    let key = SigningKey::new("key-a1", 0);
    fake.publish(TENANT_A, &key);
    let twice = format!(
        "{}\n[[teamspaces]]\nname = \"acme-eu\"\ntenant_id = \"{TENANT_A}\"\naudience = \"{APP_A}\"\nauthority_url = \"{}\"\n",
        two_tenants(&fake),
        fake.url()
    );
    let app = TokenApp::start(&twice, Some(ADMIN), KeySettings::default(), Clock::System).await;
    let token = key.sign(&access_token_claims(&fake.url(), TENANT_A, APP_A, ADA_OID, "mcp.access"));
    let response =
        app.client.post(app.url("/v1/introspect")).bearer_auth(ADMIN).form(&[("token", &token)]).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ambiguous_teamspace");
    assert!(body["error"]["message"].as_str().unwrap().contains("acme, acme-eu"), "{body}");
}

#[tokio::test]
async fn checks_are_counted_by_bounded_labels() {
    let setup = Setup::start().await;
    assert_eq!(setup.app.authorize("acme", Some(&setup.token(&[]))).await.status(), 200);
    let stale = setup.token(&[("exp", json!(1))]);
    assert_eq!(setup.app.authorize("acme", Some(&stale)).await.status(), 401);
    let text = setup.app.client.get(setup.app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for line in [
        "c7sync_token_checks_total{teamspace=\"acme\",outcome=\"accepted\",reason=\"\"} 1",
        "c7sync_token_checks_total{teamspace=\"acme\",outcome=\"refused\",reason=\"expired\"} 1",
        &format!("c7sync_jwks_fetches_total{{tenant=\"{TENANT_A}\",result=\"ok\"}} 1"),
        "c7sync_token_check_duration_seconds_count 2",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
}
