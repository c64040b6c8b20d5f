//! An in-process stand-in for Entra's token issuer on 127.0.0.1, as the identity platform
//! documents it:
//! - `GET /{tenant}/v2.0/.well-known/openid-configuration`: the discovery document, stating
//!   the issuer `{url}/{tenant}/v2.0` and the `jwks_uri`; an unknown tenant is a 400 with
//!   AADSTS90002, as Entra answers;
//! - `GET /{tenant}/discovery/v2.0/keys`: the key set (`kty`, `use`, `kid`, `x5t`, `n`, `e`,
//!   `issuer`), with keys published and retired while it runs (rotation);
//! - an outage switch (503 for everything), and counters of each kind of fetch.
//!
//! Tokens are signed as Entra signs them: RS256, the key named by `kid` (and `x5t`) in the
//! header, with the v2.0 access-token claims. Also compiled into `examples/token_bench.rs`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};

/// A signing key: RSA 2048 material and the `kid` it is published under.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    encoding: Arc<EncodingKey>,
    jwk: Value,
}

/// RSA key material, generated once per slot for the whole test binary: 2048-bit generation
/// takes a while, and tests only need a few distinct keys.
fn material(slot: usize) -> &'static (EncodingKey, String, String) {
    static SLOTS: [OnceLock<(EncodingKey, String, String)>; 4] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new(), OnceLock::new()];
    SLOTS[slot % SLOTS.len()].get_or_init(|| {
        let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        let der = private.to_pkcs1_der().unwrap();
        let n = URL_SAFE_NO_PAD.encode(private.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(private.e().to_bytes_be());
        (EncodingKey::from_rsa_der(der.as_bytes()), n, e)
    })
}

impl SigningKey {
    /// The key in material slot `slot` (0–3), published as `kid`.
    pub fn new(kid: &str, slot: usize) -> SigningKey {
        let (encoding, n, e) = material(slot);
        let jwk = json!({"kty": "RSA", "use": "sig", "kid": kid, "x5t": kid, "n": n, "e": e});
        SigningKey { kid: kid.to_owned(), encoding: Arc::new(encoding.clone()), jwk }
    }

    /// The public key as the key set publishes it.
    pub fn jwk(&self) -> Value {
        self.jwk.clone()
    }

    /// `claims` signed with this key, the header naming it as Entra's does.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        header.x5t = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// The claims of an Entra v2.0 access token for `audience`, from `issuer_base`/`tenant`, for
/// user `oid`, valid from a minute ago for an hour.
pub fn access_token_claims(issuer_base: &str, tenant: &str, audience: &str, oid: &str, scopes: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "aud": audience,
        "iss": format!("{issuer_base}/{tenant}/v2.0"),
        "iat": now - 60, "nbf": now - 60, "exp": now + 3600,
        "aio": "AWQAm/8ZAAAA",
        "azp": "9a2c2b4e-1111-4d6e-8e5b-0c7e1b2f3a4d", "azpacr": "1",
        "name": "Ada Lovelace", "oid": oid,
        "preferred_username": "ada@contoso.com",
        "rh": "0.AAAA.", "scp": scopes,
        "sub": "kX2oXqTb1c8n3m0o9p7q6r5s4t3u2v1w0x9y8z7a6b5",
        "tid": tenant, "uti": "q1w2e3r4t5y6u7i8o9p0", "ver": "2.0",
    })
}

#[derive(Default)]
struct Tenant {
    keys: Vec<SigningKey>,
    issuer_override: Option<String>,
}

#[derive(Default)]
struct FakeState {
    base: String,
    tenants: HashMap<String, Tenant>,
    down: bool,
    discovery_fetches: HashMap<String, usize>,
    key_fetches: HashMap<String, usize>,
}

/// The running fake.
#[derive(Clone)]
pub struct FakeEntra {
    addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
}

impl FakeEntra {
    /// Serves on a free loopback port until the test ends.
    pub async fn start() -> FakeEntra {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(FakeState { base: format!("http://{addr}"), ..FakeState::default() }));
        let app = Router::new()
            .route("/{tenant}/v2.0/.well-known/openid-configuration", get(discovery))
            .route("/{tenant}/discovery/v2.0/keys", get(keys))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeEntra { addr, state }
    }

    /// `http://127.0.0.1:PORT`: the `authority_url` to configure.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds `key` to `tenant`'s published key set (the tenant exists from then on).
    pub fn publish(&self, tenant: &str, key: &SigningKey) {
        self.state.lock().unwrap().tenants.entry(tenant.to_owned()).or_default().keys.push(key.clone());
    }

    /// Removes the key `kid` from `tenant`'s key set.
    pub fn retire(&self, tenant: &str, kid: &str) {
        if let Some(t) = self.state.lock().unwrap().tenants.get_mut(tenant) {
            t.keys.retain(|k| k.kid != kid);
        }
    }

    /// Makes the discovery document state another issuer (a misconfigured authority).
    pub fn misstate_issuer(&self, tenant: &str, issuer: &str) {
        self.state.lock().unwrap().tenants.entry(tenant.to_owned()).or_default().issuer_override = Some(issuer.into());
    }

    /// Starts or ends an outage: every request answers 503.
    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    /// Key-set requests `tenant` has had.
    pub fn key_fetches(&self, tenant: &str) -> usize {
        self.state.lock().unwrap().key_fetches.get(tenant).copied().unwrap_or(0)
    }

    /// Discovery requests `tenant` has had.
    pub fn discovery_fetches(&self, tenant: &str) -> usize {
        self.state.lock().unwrap().discovery_fetches.get(tenant).copied().unwrap_or(0)
    }
}

fn outage() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response()
}

fn tenant_not_found(tenant: &str) -> Response {
    let body = json!({
        "error": "invalid_tenant",
        "error_description": format!("AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
        "error_codes": [90002],
    });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

async fn discovery(State(state): State<Arc<Mutex<FakeState>>>, Path(tenant): Path<String>) -> Response {
    let mut state = state.lock().unwrap();
    *state.discovery_fetches.entry(tenant.clone()).or_default() += 1;
    if state.down {
        return outage();
    }
    let base = state.base.clone();
    let Some(found) = state.tenants.get(&tenant) else { return tenant_not_found(&tenant) };
    let issuer = found.issuer_override.clone().unwrap_or_else(|| format!("{base}/{tenant}/v2.0"));
    Json(json!({
        "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
        "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "tenant_region_scope": "EU",
    }))
    .into_response()
}

async fn keys(State(state): State<Arc<Mutex<FakeState>>>, Path(tenant): Path<String>) -> Response {
    let mut state = state.lock().unwrap();
    *state.key_fetches.entry(tenant.clone()).or_default() += 1;
    if state.down {
        return outage();
    }
    let base = state.base.clone();
    let Some(found) = state.tenants.get(&tenant) else { return tenant_not_found(&tenant) };
    let keys: Vec<Value> = found
        .keys
        .iter()
        .map(|k| {
            let mut jwk = k.jwk.clone();
            jwk["issuer"] = json!(format!("{base}/{tenant}/v2.0"));
            jwk
        })
        .collect();
    Json(json!({ "keys": keys })).into_response()
}
