//! A tenant's token authority: its v2.0 issuer, its OpenID discovery document and the signing
//! keys the document points to. Used by the key cache and by `c7sync teamspace test`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, PublicKeyUse};
use serde::{Deserialize, Serialize};

use super::signature::VerifyingKey;

use crate::domain::TenantId;

/// How long one discovery or key request may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest discovery document or key set read (Entra's are a few KB).
const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// An authority base URL (`https://login.microsoftonline.com`, a sovereign cloud, a fake) and a
/// tenant: together they name one issuer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Authority {
    base: String,
    tenant: TenantId,
}

/// Why a discovery or key fetch failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthorityError {
    /// No answer (connection refused, DNS, timeout).
    #[error("{url}: {message}")]
    Unreachable {
        /// What was asked.
        url: String,
        /// Why.
        message: String,
    },
    /// An answer that is not the document.
    #[error("{url}: {message}")]
    BadAnswer {
        /// What was asked.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// The discovery document states another issuer: the URL or tenant is wrong.
    #[error(
        "the discovery document states issuer `{stated}`, expected `{expected}`: check `tenant_id` and `authority_url`"
    )]
    IssuerMismatch {
        /// What the document says.
        stated: String,
        /// What the configuration implies.
        expected: String,
    },
}

/// What a discovery found.
#[derive(Debug, Clone, Serialize)]
pub struct Discovery {
    /// The discovery document's URL.
    pub discovery_url: String,
    /// Its `issuer` (equal to the expected one).
    pub issuer: String,
    /// Its `jwks_uri`.
    pub jwks_uri: String,
    /// The RS256 signing keys found there, by `kid`.
    #[serde(skip)]
    pub keys: KeySet,
    /// Their ids, sorted.
    pub key_ids: Vec<String>,
}

/// Signing keys by `kid`.
#[derive(Clone, Default)]
pub struct KeySet(pub HashMap<String, Arc<VerifyingKey>>);

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

#[derive(Deserialize)]
struct DiscoveryDocument {
    issuer: String,
    jwks_uri: String,
}

impl Authority {
    /// The authority at `base` (trailing slashes ignored) for `tenant`.
    pub fn new(base: &url::Url, tenant: TenantId) -> Authority {
        Authority { base: base.as_str().trim_end_matches('/').to_owned(), tenant }
    }

    /// The tenant.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// `{base}/{tenant}/v2.0`: what `iss` must say.
    pub fn issuer(&self) -> String {
        format!("{}/{}/v2.0", self.base, self.tenant)
    }

    /// `{issuer}/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer())
    }

    /// Fetches the discovery document, confirms its issuer, then fetches its keys.
    pub async fn discover(&self, http: &reqwest::Client) -> Result<Discovery, AuthorityError> {
        let discovery_url = self.discovery_url();
        let document: DiscoveryDocument = fetch_json(http, &discovery_url).await?;
        let expected = self.issuer();
        if document.issuer != expected {
            return Err(AuthorityError::IssuerMismatch { stated: document.issuer, expected });
        }
        let jwks_uri = document.jwks_uri;
        let set: JwkSet = fetch_json(http, &jwks_uri).await?;
        let keys = signing_keys(&set);
        if keys.0.is_empty() {
            return Err(AuthorityError::BadAnswer {
                url: jwks_uri,
                message: "the key set holds no RSA signing key with a `kid`".into(),
            });
        }
        let mut key_ids: Vec<String> = keys.0.keys().cloned().collect();
        key_ids.sort();
        Ok(Discovery { discovery_url, issuer: expected, jwks_uri, keys, key_ids })
    }
}

/// The RSA keys meant for signatures (`use` absent or `sig`), by `kid`; others are skipped
/// (with a warning when an RSA signing key cannot be used).
fn signing_keys(set: &JwkSet) -> KeySet {
    let keys = set
        .keys
        .iter()
        .filter(|jwk| matches!(jwk.common.public_key_use, None | Some(PublicKeyUse::Signature)))
        .filter_map(|jwk| {
            let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else { return None };
            let kid = jwk.common.key_id.clone()?;
            match VerifyingKey::from_jwk_components(&rsa.n, &rsa.e) {
                Ok(key) => Some((kid, Arc::new(key))),
                Err(error) => {
                    tracing::warn!(kid = ?kid, %error, "a published signing key cannot be used; skipped");
                    None
                }
            }
        })
        .collect();
    KeySet(keys)
}

async fn fetch_json<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: &str) -> Result<T, AuthorityError> {
    let unreachable = |message: String| AuthorityError::Unreachable { url: url.to_owned(), message };
    let bad = |message: String| AuthorityError::BadAnswer { url: url.to_owned(), message };
    let response = http.get(url).send().await.map_err(|e| unreachable(crate::outbound::describe(&e)))?;
    let status = response.status();
    if !status.is_success() {
        let message = format!("HTTP {status}");
        return Err(if status.is_server_error() || status.as_u16() == 429 {
            unreachable(message)
        } else {
            bad(message)
        });
    }
    let body = crate::outbound::body_within(response, MAX_DOCUMENT_BYTES).await.map_err(unreachable)?;
    serde_json::from_slice(&body).map_err(|e| bad(format!("not the expected JSON document: {e}")))
}
