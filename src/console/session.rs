//! Console sessions without server state, so any replica accepts a session any other issued:
//! the cookie holds an expiry and a random nonce, signed with a key derived from the admin
//! token. A new admin token signs everyone out. Every state-changing form carries a CSRF token,
//! an HMAC of the session's nonce, which a page of another origin cannot read.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::clock::Millis;
use crate::secret::SecretHash;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "c7sync_session";
/// The cookie that ties a sign-in form to the browser that loaded it.
pub const SIGN_IN_COOKIE: &str = "c7sync_sign_in";
/// How long a session lasts: a working day.
pub const SESSION_LIFETIME_MS: i64 = 8 * 3600 * 1000;
/// How long a sign-in form may stay open.
pub const SIGN_IN_LIFETIME_MS: i64 = 30 * 60 * 1000;

/// The keys sessions are signed with, derived from the admin token.
#[derive(Clone)]
pub struct SessionKeys {
    key: [u8; 32],
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(…)")
    }
}

/// A valid session.
#[derive(Debug, Clone)]
pub struct Session {
    nonce: String,
    /// When it ends.
    pub expires: Millis,
    csrf: String,
}

impl Session {
    /// The CSRF token its forms carry.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// Why a session cookie was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No cookie.
    Missing,
    /// Not one this key signed (forged, damaged, or signed with an old admin token).
    Forged,
    /// Past its expiry.
    Expired,
}

fn random_nonce() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

impl SessionKeys {
    /// Keys for the admin token whose hash is `admin`.
    pub fn new(admin: &SecretHash) -> Self {
        SessionKeys { key: admin.derive_key(b"c7sync console session v1") }
    }

    fn mac(&self, parts: &[&str]) -> Hmac<Sha256> {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            unreachable!("HMAC takes keys of any length")
        };
        for part in parts {
            mac.update(part.as_bytes());
            mac.update(b"|");
        }
        mac
    }

    fn sign(&self, parts: &[&str]) -> String {
        hex(&self.mac(parts).finalize().into_bytes())
    }

    fn verify(&self, parts: &[&str], signature: &str) -> bool {
        unhex(signature).is_some_and(|bytes| self.mac(parts).verify_slice(&bytes).is_ok())
    }

    fn session(&self, nonce: String, expires: Millis) -> Session {
        let csrf = self.sign(&["csrf", &nonce]);
        Session { nonce, expires, csrf }
    }

    /// A new session from `now`, and the cookie value that carries it.
    pub fn issue(&self, now: Millis) -> Result<(Session, String), getrandom::Error> {
        let expires = Millis(now.0 + SESSION_LIFETIME_MS);
        let nonce = random_nonce()?;
        let expiry = expires.0.to_string();
        let value = format!("{expiry}.{nonce}.{}", self.sign(&["session", &expiry, &nonce]));
        Ok((self.session(nonce, expires), value))
    }

    /// The session a cookie value carries, if it is one of ours and has not expired at `now`.
    pub fn open(&self, value: Option<&str>, now: Millis) -> Result<Session, Refused> {
        let value = value.ok_or(Refused::Missing)?;
        let mut parts = value.splitn(3, '.');
        let (Some(expiry), Some(nonce), Some(signature)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Refused::Forged);
        };
        if !self.verify(&["session", expiry, nonce], signature) {
            return Err(Refused::Forged);
        }
        let expires = Millis(expiry.parse().map_err(|_| Refused::Forged)?);
        if now.0 >= expires.0 {
            return Err(Refused::Expired);
        }
        Ok(self.session(nonce.to_owned(), expires))
    }

    /// Whether `presented` is the CSRF token of `session`.
    pub fn csrf_matches(&self, session: &Session, presented: &str) -> bool {
        self.verify(&["csrf", &session.nonce], presented)
    }

    /// A sign-in form's cookie value and the CSRF token the form carries.
    pub fn sign_in_form(&self, now: Millis) -> Result<(String, String), getrandom::Error> {
        let nonce = random_nonce()?;
        let cookie = format!("{}.{nonce}", now.0 + SIGN_IN_LIFETIME_MS);
        let csrf = self.sign(&["sign-in", &cookie]);
        Ok((cookie, csrf))
    }

    /// Whether a sign-in form was loaded by this browser, recently.
    pub fn sign_in_matches(&self, cookie: Option<&str>, presented: &str, now: Millis) -> bool {
        let Some(cookie) = cookie else { return false };
        let fresh = cookie.split('.').next().and_then(|e| e.parse::<i64>().ok()).is_some_and(|e| now.0 < e);
        fresh && self.verify(&["sign-in", cookie], presented)
    }
}

/// A cookie header value: HttpOnly, SameSite=Strict, scoped to the console, Secure behind https.
pub fn set_cookie(name: &str, value: &str, max_age_s: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/console; Max-Age={max_age_s}; HttpOnly; SameSite=Strict{secure}")
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(token: &str) -> SessionKeys {
        SessionKeys::new(&SecretHash::of(token))
    }

    #[test]
    fn a_session_opens_until_it_expires_and_only_with_its_key() {
        let now = Millis(1_000_000);
        let (issued, cookie) = keys("admin").issue(now).unwrap_or_else(|_| unreachable!());
        let opened = keys("admin").open(Some(&cookie), Millis(now.0 + 1000)).unwrap_or_else(|_| unreachable!());
        assert_eq!(opened.csrf(), issued.csrf(), "another replica with the same token agrees");
        assert!(keys("admin").csrf_matches(&opened, issued.csrf()));
        assert!(!keys("admin").csrf_matches(&opened, "00"));
        assert_eq!(
            keys("admin").open(Some(&cookie), Millis(now.0 + SESSION_LIFETIME_MS)).err(),
            Some(Refused::Expired)
        );
        assert_eq!(keys("rotated").open(Some(&cookie), now).err(), Some(Refused::Forged));
        let later = cookie.replacen(&(now.0 + SESSION_LIFETIME_MS).to_string(), "99999999999999", 1);
        assert_eq!(keys("admin").open(Some(&later), now).err(), Some(Refused::Forged), "the expiry is signed");
        assert_eq!(keys("admin").open(Some("x.y"), now).err(), Some(Refused::Forged));
        assert_eq!(keys("admin").open(None, now).err(), Some(Refused::Missing));
        assert!(!cookie.contains("admin"));
    }

    #[test]
    fn a_sign_in_form_is_tied_to_its_cookie_for_a_while() {
        let now = Millis(5_000);
        let k = keys("admin");
        let (cookie, csrf) = k.sign_in_form(now).unwrap_or_else(|_| unreachable!());
        assert!(k.sign_in_matches(Some(&cookie), &csrf, now));
        assert!(!k.sign_in_matches(None, &csrf, now));
        assert!(!k.sign_in_matches(Some(&cookie), &csrf, Millis(now.0 + SIGN_IN_LIFETIME_MS)));
        let (other, _) = k.sign_in_form(now).unwrap_or_else(|_| unreachable!());
        assert!(!k.sign_in_matches(Some(&other), &csrf, now));
    }
}
