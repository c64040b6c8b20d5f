//! The HTTP clients c7sync uses to call out (Microsoft Graph, Entra's token, discovery and key
//! endpoints, the webhook): built in one place, so every call has a timeout and our user agent.

use std::time::Duration;

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client whose every request times out after `timeout`; with `https_only`, plain http is
/// refused (the config allows http only to loopback hosts, for tests and local proxies).
pub fn client(timeout: Duration, https_only: bool) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(CONNECT_TIMEOUT.min(timeout))
        .user_agent(concat!("c7sync/", env!("CARGO_PKG_VERSION")))
        .https_only(https_only)
        .build()
}

/// The body of `response`, refused when it is larger than `limit` bytes: a misbehaving or
/// hostile endpoint cannot make us buffer without bound.
pub async fn body_within(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(format!("the response is larger than {limit} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
        if body.len() + chunk.len() > limit {
            return Err(format!("the response is larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A reqwest error with its causes, one line ("timed out" rather than reqwest's wording).
pub fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() { "timed out".to_owned() } else { error.to_string() };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
