//! Stage-1 decisions remembered per teamspace, keyed by the SHA-256 of the token (never the
//! token), for at most a minute and never past the token's expiry: a gateway that asks about
//! the same token on every request pays for its signature once. Stage 2 is never cached here;
//! it goes through the member look-up, which follows member changes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};

use super::reason::Reason;
use crate::clock::Millis;
use crate::domain::{Oid, TenantId};

/// The longest a decision is kept.
pub const MAX_AGE_MS: i64 = 60_000;
/// Decisions kept per teamspace; past this, a shard drops its expired ones, then all of them.
const CAPACITY: usize = 65_536;
/// Independent locks, so new tokens (a write each) do not queue behind one another.
const SHARDS: usize = 16;

/// What stage 1 established about a token whose signature and claims held.
#[derive(Debug, Clone)]
pub struct Verified {
    /// `oid`.
    pub oid: Oid,
    /// `tid`.
    pub tenant_id: TenantId,
    /// `scp`, split.
    pub scopes: Vec<String>,
    /// `exp`, seconds.
    pub expires_at: i64,
    /// The answer's strings, formatted once per token rather than once per request:
    /// `tid`, `oid` and `exp` as RFC 3339.
    pub text: AnswerText,
    /// `iat`, seconds.
    pub issued_at: Option<i64>,
    /// `sub`.
    pub subject: Option<String>,
    /// `azp`: the client app.
    pub client_id: Option<String>,
    /// `iss`.
    pub issuer: String,
    /// The audience that matched.
    pub audience: String,
}

/// [`Verified`]'s ids and expiry as the answers print them.
#[derive(Debug, Clone)]
pub struct AnswerText {
    /// `tid`.
    pub tenant_id: String,
    /// `oid`.
    pub oid: String,
    /// `exp`, RFC 3339.
    pub expires_at: String,
}

/// A remembered stage-1 result.
#[derive(Debug, Clone)]
pub enum StageOne {
    /// Signature and claims held.
    Passed(Arc<Verified>),
    /// Refused, with the detail.
    Refused(Reason, Arc<str>),
}

/// The SHA-256 of a token.
pub type TokenHash = [u8; 32];

/// Hashes a token for the cache key.
pub fn hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

type Shard = RwLock<HashMap<TokenHash, (Millis, StageOne)>>;

/// One teamspace's remembered decisions.
pub struct Decisions {
    shards: [Shard; SHARDS],
}

impl Default for Decisions {
    fn default() -> Self {
        Decisions { shards: std::array::from_fn(|_| Shard::default()) }
    }
}

impl Decisions {
    fn shard(&self, key: &TokenHash) -> &Shard {
        &self.shards[usize::from(key[0]) % SHARDS]
    }

    /// The remembered decision, if still valid at `now`.
    pub fn get(&self, key: &TokenHash, now: Millis) -> Option<StageOne> {
        let entries = self.shard(key).read().ok()?;
        entries.get(key).filter(|(until, _)| now < *until).map(|(_, decision)| decision.clone())
    }

    /// Remembers `decision` until `min(now + 60 s, expires)`.
    pub fn put(&self, key: TokenHash, now: Millis, expires: Option<Millis>, decision: StageOne) {
        let until = Millis(now.0.saturating_add(MAX_AGE_MS).min(expires.map_or(i64::MAX, |e| e.0)));
        if until <= now {
            return;
        }
        let Ok(mut entries) = self.shard(&key).write() else { return };
        if entries.len() >= CAPACITY / SHARDS {
            entries.retain(|_, (until, _)| now < *until);
            if entries.len() >= CAPACITY / SHARDS {
                entries.clear();
            }
        }
        entries.insert(key, (until, decision));
    }
}

/// Whether a refusal may be remembered: not when a key fetch or the clock could change it.
pub fn cacheable(reason: Reason) -> bool {
    !matches!(reason, Reason::UnknownKey | Reason::NotYetValid | Reason::NotProvisioned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_last_a_minute_at_most_and_never_past_expiry() {
        let decisions = Decisions::default();
        let refused = || StageOne::Refused(Reason::BadSignature, "x".into());
        let now = Millis(1_000_000);
        decisions.put(hash("a"), now, None, refused());
        decisions.put(hash("b"), now, Some(Millis(now.0 + 5_000)), refused());
        decisions.put(hash("c"), now, Some(Millis(now.0 - 1)), refused());
        assert!(decisions.get(&hash("a"), Millis(now.0 + MAX_AGE_MS - 1)).is_some());
        assert!(decisions.get(&hash("a"), Millis(now.0 + MAX_AGE_MS)).is_none());
        assert!(decisions.get(&hash("b"), Millis(now.0 + 4_999)).is_some());
        assert!(decisions.get(&hash("b"), Millis(now.0 + 5_000)).is_none());
        assert!(decisions.get(&hash("c"), now).is_none());
        assert!(decisions.get(&hash("never"), now).is_none());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let decisions = Decisions::default();
        let now = Millis(0);
        for n in 0..CAPACITY + 10 {
            decisions.put(hash(&n.to_string()), now, None, StageOne::Refused(Reason::Malformed, "".into()));
        }
        let kept: usize = decisions.shards.iter().map(|s| s.read().unwrap().len()).sum();
        assert!(kept <= CAPACITY, "{kept}");
        assert!(decisions.get(&hash(&(CAPACITY + 9).to_string()), now).is_some());
    }
}
