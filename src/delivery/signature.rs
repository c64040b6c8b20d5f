//! Stripe-style webhook signatures: `c7sync-signature: t=<unix seconds>,v1=<hex>`, where
//! `<hex>` is HMAC-SHA256, keyed with the signing secret, of `<unix seconds>.<raw body>`.
//! Receivers recompute it over the raw bytes and refuse a mismatch or a `t` older than five
//! minutes (replays). [`verify`] is the reference implementation the README shows.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the signature.
pub const HEADER: &str = "c7sync-signature";
/// How old a signature a receiver should accept.
pub const TOLERANCE_SECONDS: i64 = 300;

/// Why a signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not `t=…,v1=…`.
    #[error("malformed signature header")]
    Malformed,
    /// `t` is too far from now.
    #[error("signature timestamp outside the tolerance")]
    Stale,
    /// The MAC does not match.
    #[error("signature mismatch")]
    Mismatch,
}

/// HMAC accepts keys of any length, so this is `None` only if the crate's contract changed.
fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).ok()?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// The header value for `body` signed at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let hex: String = mac(secret, timestamp, body)
        .map(|m| m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect())
        .unwrap_or_default();
    format!("t={timestamp},v1={hex}")
}

/// Checks a header against the raw body, at `now` (unix seconds).
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => signatures.push(v),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if (now - timestamp).abs() > TOLERANCE_SECONDS {
        return Err(SignatureError::Stale);
    }
    for signature in signatures {
        let Some(bytes) = decode_hex(signature) else { continue };
        // `verify_slice` compares in constant time.
        if mac(secret, timestamp, body).is_some_and(|m| m.verify_slice(&bytes).is_ok()) {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_with_its_secret_body_and_time() {
        let header = sign(b"whsec", 1_700_000_000, br#"{"events":[]}"#);
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(verify(b"whsec", &header, br#"{"events":[]}"#, 1_700_000_100), Ok(()));
        assert_eq!(verify(b"other", &header, br#"{"events":[]}"#, 1_700_000_100), Err(SignatureError::Mismatch));
        assert_eq!(verify(b"whsec", &header, br#"{"events":[1]}"#, 1_700_000_100), Err(SignatureError::Mismatch));
        assert_eq!(verify(b"whsec", &header, br#"{"events":[]}"#, 1_700_000_301), Err(SignatureError::Stale));
        assert_eq!(verify(b"whsec", "v1=00", b"", 0), Err(SignatureError::Malformed));
    }
}
