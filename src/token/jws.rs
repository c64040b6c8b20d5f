//! An access token in JWS compact form, taken apart without trusting it: the header, the
//! claims, and the bytes the signature covers. Nothing here verifies anything; `rules` judges
//! the claims and `keys` the signature.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

/// The longest token looked at. Entra access tokens are 1–3 KB; anything far larger is not one,
/// and decoding it would only cost memory.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A decoded, unverified token.
#[derive(Debug, Clone)]
pub struct Jws<'a> {
    /// The protected header.
    pub header: Map<String, Value>,
    /// The payload.
    pub claims: Claims,
    /// `header.payload`, the bytes the signature covers.
    pub signing_input: &'a str,
    /// The signature, still base64url.
    pub signature: &'a str,
}

/// The payload's claims, with typed getters that name the claim when its type is wrong.
#[derive(Debug, Clone, Default)]
pub struct Claims(pub Map<String, Value>);

/// A claim present with the wrong JSON type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("claim `{claim}` is not {expected}")]
pub struct WrongType {
    /// The claim's name.
    pub claim: &'static str,
    /// What it should have been.
    pub expected: &'static str,
}

impl Claims {
    /// A string claim; `Ok(None)` when absent.
    pub fn string(&self, claim: &'static str) -> Result<Option<&str>, WrongType> {
        match self.0.get(claim) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(WrongType { claim, expected: "a string" }),
        }
    }

    /// A NumericDate claim (seconds since the epoch, RFC 7519 §2), fractions dropped.
    pub fn seconds(&self, claim: &'static str) -> Result<Option<i64>, WrongType> {
        match self.0.get(claim) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
                .map(Some)
                .ok_or(WrongType { claim, expected: "a number of seconds" }),
            Some(_) => Err(WrongType { claim, expected: "a number of seconds" }),
        }
    }

    /// `aud`: one string, or (RFC 7519 §4.1.3) an array of strings.
    pub fn audiences(&self) -> Result<Vec<&str>, WrongType> {
        let wrong = WrongType { claim: "aud", expected: "a string or an array of strings" };
        match self.0.get("aud") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(one)) => Ok(vec![one.as_str()]),
            Some(Value::Array(many)) => many.iter().map(|v| v.as_str().ok_or(wrong.clone())).collect(),
            Some(_) => Err(wrong),
        }
    }
}

/// Splits and decodes a compact JWS; the message says what is wrong with it.
pub fn decode(token: &str) -> Result<Jws<'_>, String> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(format!("the token is {} bytes; Entra access tokens are a few KB", token.len()));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        let dots = token.matches('.').count();
        return Err(format!(
            "a JWT has three base64url parts separated by dots; this has {} (an opaque or encrypted token, or a truncated copy)",
            dots + 1
        ));
    };
    let signing_input = &token[..header.len() + 1 + payload.len()];
    let header = object(header, "header")?;
    let claims = object(payload, "payload")?;
    if signature.is_empty() {
        return Err("the signature part is empty (an unsigned token)".into());
    }
    Ok(Jws { header, claims: Claims(claims), signing_input, signature })
}

fn object(part: &str, name: &str) -> Result<Map<String, Value>, String> {
    let bytes =
        URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).map_err(|e| format!("the {name} is not base64url: {e}"))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(format!("the {name} is JSON but not an object")),
        Err(e) => Err(format!("the {name} is not JSON: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    #[test]
    fn takes_a_token_apart() {
        let header = part(&serde_json::json!({"alg": "RS256", "kid": "k1"}));
        let payload = part(&serde_json::json!({"aud": ["a", "b"], "exp": 1.5e9, "oid": "x"}));
        let token = format!("{header}.{payload}.c2ln");
        let jws = decode(&token).unwrap();
        assert_eq!(jws.header["kid"], "k1");
        assert_eq!(jws.signing_input, format!("{header}.{payload}"));
        assert_eq!(jws.signature, "c2ln");
        assert_eq!(jws.claims.audiences().unwrap(), ["a", "b"]);
        assert_eq!(jws.claims.seconds("exp").unwrap(), Some(1_500_000_000));
        assert_eq!(jws.claims.string("oid").unwrap(), Some("x"));
        assert_eq!(jws.claims.string("tid").unwrap(), None);
        assert_eq!(jws.claims.seconds("oid").unwrap_err().to_string(), "claim `oid` is not a number of seconds");
    }

    #[test]
    fn says_what_is_wrong_with_a_broken_token() {
        let header = part(&serde_json::json!({"alg": "RS256"}));
        let cases = [
            ("opaque-reference-token".to_owned(), "this has 1"),
            (format!("{header}.e30"), "this has 2"),
            (format!("{header}.e30.sig.extra.more"), "this has 5"),
            (format!("{header}.e30."), "unsigned"),
            (format!("{header}.!!!.sig"), "payload is not base64url"),
            (format!("{header}.{}.sig", URL_SAFE_NO_PAD.encode("[1]")), "payload is JSON but not an object"),
            (format!("{}.e30.sig", URL_SAFE_NO_PAD.encode("{")), "header is not JSON"),
            ("a".repeat(MAX_TOKEN_BYTES + 1), "a few KB"),
        ];
        for (token, expected) in cases {
            let message = decode(&token).unwrap_err();
            assert!(message.contains(expected), "{expected:?} not in {message:?}");
        }
    }
}
