//! Secrets: the one place c7sync reads them from the environment (the config only names the
//! variables), hashes the ones it checks presented values against (admin, metrics and SCIM
//! bearer tokens: only a SHA-256 is kept, compared in constant time), and takes a bearer token
//! out of a request. No secret value has a `Debug` or `Display` that shows it.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// SHA-256 of a secret.
pub fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Whether `presented` hashes to `stored`, in time independent of where they differ.
pub fn matches(presented: &str, stored: &[u8]) -> bool {
    hash(presented).ct_eq(stored).into()
}

/// A secret kept only as its hash, to check presented values against.
#[derive(Clone)]
pub struct SecretHash(Arc<[u8]>);

impl SecretHash {
    /// The hash of `secret`.
    pub fn of(secret: &str) -> Self {
        SecretHash(hash(secret).into())
    }

    /// Whether `presented` is the secret.
    pub fn matches(&self, presented: &str) -> bool {
        matches(presented, &self.0)
    }

    /// A key for `purpose`, derived from the secret: HMAC-SHA256 keyed with its hash. Every
    /// process given the same secret derives the same key, and a new secret makes a new one.
    pub fn derive_key(&self, purpose: &[u8]) -> [u8; 32] {
        use hmac::Mac;
        let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(&self.0) else {
            unreachable!("HMAC takes keys of any length")
        };
        mac.update(purpose);
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHash(…)")
    }
}

/// The value of environment variable `name`, if it is set and not empty.
pub fn from_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// The token of an `Authorization: Bearer …` header (the scheme in any case), trimmed.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    value.get(..7).filter(|scheme| scheme.eq_ignore_ascii_case("bearer ")).map(|_| value[7..].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_secret_matches_and_debug_shows_nothing() {
        let kept = SecretHash::of("s3cret");
        assert!(kept.matches("s3cret"));
        assert!(!kept.matches("s3cret "));
        assert!(!format!("{kept:?}").contains("s3cret"));
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(axum::http::header::AUTHORIZATION, "BEARER  abc ".parse().unwrap_or_else(|_| unreachable!()));
        assert_eq!(bearer(&headers), Some("abc"));
    }
}
