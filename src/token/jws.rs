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
    /// The protected header's `alg` and `kid`.
    pub header: Header,
    /// The header's JSON, for showing all of it ([`Jws::full_header`]).
    header_json: Vec<u8>,
    /// The claims the checks read.
    pub claims: Claims,
    /// The payload's JSON, for showing every claim ([`Jws::all_claims`]).
    payload: Vec<u8>,
    /// `header.payload`, the bytes the signature covers.
    pub signing_input: &'a str,
    /// The signature, still base64url.
    pub signature: &'a str,
}

/// The header fields the checks read (typed, so a wrong type reads as absent).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Header {
    alg: Option<Value>,
    kid: Option<Value>,
}

impl Header {
    /// `alg`, when a string.
    pub fn alg(&self) -> Option<&str> {
        self.alg.as_ref().and_then(Value::as_str)
    }

    /// `kid`, when a non-empty string.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_ref().and_then(Value::as_str).filter(|k| !k.is_empty())
    }
}

/// The claims the checks read, with typed getters that name the claim when its type is wrong.
/// Only these are parsed: an Entra token has twenty-odd claims, and building all of them on
/// every cold check was a sixth of its time in the allocator.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Claims {
    iss: Option<Value>,
    aud: Option<Value>,
    tid: Option<Value>,
    oid: Option<Value>,
    scp: Option<Value>,
    exp: Option<Value>,
    nbf: Option<Value>,
    iat: Option<Value>,
    ver: Option<Value>,
    sub: Option<Value>,
    azp: Option<Value>,
}

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
    fn get(&self, claim: &str) -> Option<&Value> {
        match claim {
            "iss" => self.iss.as_ref(),
            "aud" => self.aud.as_ref(),
            "tid" => self.tid.as_ref(),
            "oid" => self.oid.as_ref(),
            "scp" => self.scp.as_ref(),
            "exp" => self.exp.as_ref(),
            "nbf" => self.nbf.as_ref(),
            "iat" => self.iat.as_ref(),
            "ver" => self.ver.as_ref(),
            "sub" => self.sub.as_ref(),
            "azp" => self.azp.as_ref(),
            _ => None,
        }
    }

    /// A string claim; `Ok(None)` when absent.
    pub fn string(&self, claim: &'static str) -> Result<Option<&str>, WrongType> {
        match self.get(claim) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(WrongType { claim, expected: "a string" }),
        }
    }

    /// A NumericDate claim (seconds since the epoch, RFC 7519 §2), fractions dropped.
    pub fn seconds(&self, claim: &'static str) -> Result<Option<i64>, WrongType> {
        match self.get(claim) {
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
        match self.get("aud") {
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
    let header_json = base64url(header, "header")?;
    let header = typed(&header_json, "header")?;
    let payload = base64url(payload, "payload")?;
    let claims = typed(&payload, "payload")?;
    if signature.is_empty() {
        return Err("the signature part is empty (an unsigned token)".into());
    }
    Ok(Jws { header, header_json, claims, payload, signing_input, signature })
}

/// Only the fields the checks read are parsed: the rest is skipped without being built.
fn typed<T: serde::de::DeserializeOwned>(json: &[u8], name: &str) -> Result<T, String> {
    serde_json::from_slice(json).map_err(|error| match object(json, name) {
        // Not JSON, or not an object.
        Err(message) => message,
        // An object the fields cannot be read from, such as one naming `exp` twice.
        Ok(_) => format!("the {name}'s fields cannot be read: {error}"),
    })
}

impl Jws<'_> {
    /// The whole header (the troubleshooter shows it).
    pub fn full_header(&self) -> Map<String, Value> {
        object(&self.header_json, "header").unwrap_or_default()
    }

    /// Every claim of the payload (the troubleshooter shows them all).
    pub fn all_claims(&self) -> Map<String, Value> {
        object(&self.payload, "payload").unwrap_or_default()
    }
}

fn base64url(part: &str, name: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).map_err(|e| format!("the {name} is not base64url: {e}"))
}

fn object(bytes: &[u8], name: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice(bytes) {
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
        assert_eq!(jws.header.kid(), Some("k1"));
        assert_eq!(jws.full_header()["alg"], "RS256");
        assert_eq!(jws.signing_input, format!("{header}.{payload}"));
        assert_eq!(jws.signature, "c2ln");
        assert_eq!(jws.all_claims()["oid"], "x");
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
            (format!("{header}.{}.sig", URL_SAFE_NO_PAD.encode(r#"{"exp":1,"exp":2}"#)), "duplicate field `exp`"),
            ("a".repeat(MAX_TOKEN_BYTES + 1), "a few KB"),
        ];
        for (token, expected) in cases {
            let message = decode(&token).unwrap_err();
            assert!(message.contains(expected), "{expected:?} not in {message:?}");
        }
    }
}
