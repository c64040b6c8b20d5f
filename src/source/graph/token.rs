//! App-only access tokens by the OAuth 2.0 client-credentials grant, against the configured
//! authority (sovereign clouds, egress proxies, loopback fakes). graph-rs-sdk's own credential
//! types only talk to Microsoft's four public login hosts, so this is the SDK's
//! `ClientApplication` for us.

use std::sync::Arc;
use std::time::{Duration, Instant};

use graph_core::identity::{ClientApplication, ForceTokenRefresh};
use graph_rs_sdk::error::{AuthExecutionError, AuthExecutionResult};
use serde::Deserialize;

/// Tokens are replaced this long before they expire, so a request never leaves with a token
/// that dies in flight.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// A client secret. Debug and Display never show it.
#[derive(Clone)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps the secret text.
    pub fn new(text: String) -> Self {
        Secret(text.into())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why no token could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    /// The authority answered with an OAuth error (wrong secret, unknown app, no consent...).
    #[error("the token endpoint {endpoint} refused the client credentials ({status}): {error}: {description}")]
    Refused {
        /// Token URL.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// OAuth `error`.
        error: String,
        /// First line of `error_description` (AADSTS code and text).
        description: String,
    },
    /// Network failure, timeout, or a response that is not a token.
    #[error("cannot get a token from {endpoint}: {message}")]
    Unavailable {
        /// Token URL.
        endpoint: String,
        /// What happened.
        message: String,
    },
}

/// Where and as whom to ask for tokens.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// `{authority}/{tenant}/oauth2/v2.0/token`.
    pub endpoint: url::Url,
    /// The app registration's client id.
    pub client_id: String,
    /// Its secret.
    pub secret: Secret,
    /// `{graph origin}/.default`.
    pub scope: String,
}

#[derive(Debug, Clone)]
struct Cached {
    token: Arc<str>,
    refresh_after: Instant,
}

/// Hands out a cached token, fetching a new one when it is near expiry or was rejected. Clones
/// share one cache; a single async mutex means one refresh at a time, however many group
/// listings ask at once.
#[derive(Debug, Clone)]
pub struct TokenProvider {
    request: Arc<TokenRequest>,
    http: reqwest::Client,
    cache: Arc<tokio::sync::Mutex<Option<Cached>>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize, Default)]
struct OAuthError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

impl TokenProvider {
    /// A provider that asks `request.endpoint` with `http`.
    pub fn new(request: TokenRequest, http: reqwest::Client) -> Self {
        TokenProvider { request: Arc::new(request), http, cache: Arc::default() }
    }

    /// A valid token: the cached one, or a fresh one.
    pub async fn token(&self) -> Result<Arc<str>, TokenError> {
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref().filter(|c| Instant::now() < c.refresh_after) {
            return Ok(cached.token.clone());
        }
        let fresh = self.acquire().await?;
        let token = fresh.token.clone();
        *cache = Some(fresh);
        Ok(token)
    }

    /// Forgets `rejected` (Graph answered 401 to it), so the next [`token`](Self::token)
    /// fetches a new one. A token already replaced by another task is left alone, so a burst of
    /// 401s causes one refresh, not one each.
    pub async fn reject(&self, rejected: &str) {
        let mut cache = self.cache.lock().await;
        if cache.as_ref().is_some_and(|c| &*c.token == rejected) {
            *cache = None;
        }
    }

    async fn acquire(&self) -> Result<Cached, TokenError> {
        let endpoint = self.request.endpoint.as_str();
        let unavailable = |message: String| TokenError::Unavailable { endpoint: endpoint.to_owned(), message };
        let asked_at = Instant::now();
        let response = self
            .http
            .post(self.request.endpoint.clone())
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.request.client_id.as_str()),
                ("client_secret", self.request.secret.expose()),
                ("scope", self.request.scope.as_str()),
            ])
            .send()
            .await
            .map_err(|e| unavailable(crate::outbound::describe(&e)))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| unavailable(crate::outbound::describe(&e)))?;
        if !status.is_success() {
            let oauth: OAuthError = serde_json::from_slice(&body).unwrap_or_default();
            if oauth.error.is_empty() {
                return Err(unavailable(format!("HTTP {status} without an OAuth error body")));
            }
            return Err(TokenError::Refused {
                endpoint: endpoint.to_owned(),
                status: status.as_u16(),
                error: oauth.error,
                description: oauth.error_description.lines().next().unwrap_or_default().to_owned(),
            });
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| unavailable(format!("the response is not a token: {e}")))?;
        // Entra's app-only tokens live 60–90 minutes; without `expires_in`, assume the short end.
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(3600));
        tracing::debug!(lifetime_s = lifetime.as_secs(), "acquired a Graph access token");
        Ok(Cached {
            token: parsed.access_token.into(),
            refresh_after: asked_at + lifetime.saturating_sub(REFRESH_MARGIN.min(lifetime / 2)),
        })
    }
}

#[async_trait::async_trait]
impl ClientApplication for TokenProvider {
    fn get_token_silent(&mut self) -> AuthExecutionResult<String> {
        // Only the SDK's blocking client calls this, and c7sync never builds one.
        Err(AuthExecutionError::Other("c7sync fetches Graph tokens asynchronously only".into()))
    }

    async fn get_token_silent_async(&mut self) -> AuthExecutionResult<String> {
        self.token().await.map(|t| t.to_string()).map_err(|e| AuthExecutionError::Other(Box::new(e)))
    }

    fn with_force_token_refresh(&mut self, force: ForceTokenRefresh) {
        if force != ForceTokenRefresh::Never {
            // The cache is behind an async mutex; `try_lock` suffices because a refresh in
            // progress will itself produce a fresh token.
            if let Ok(mut cache) = self.cache.try_lock() {
                *cache = None;
            }
        }
    }
}
