//! The checks in order, once for both callers: the service stops at the first failure and
//! remembers stage 1; the troubleshooter runs every check it can and shows each.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};

use super::decisions::{self, AnswerText, StageOne, Verified};
use super::jws::{self, Jws};
use super::keys::KeyLookup;
use super::rules::{self, Check};
use super::{Accepted, Reason, TeamspaceTokens, TokenService, Verdict};
use crate::clock::Millis;

/// How long to tell a caller to wait when the database could not answer.
const STORE_RETRY_AFTER: Duration = Duration::from_secs(2);

/// Everything the troubleshooter shows.
#[derive(Debug, Serialize)]
pub struct Explanation {
    /// Whether Context7 would accept the token (`false` when it could not be decided).
    pub accepted: bool,
    /// The first failure's code, or why it could not be decided.
    pub reason: Option<String>,
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// The decoded header (never the signature).
    pub header: Map<String, Value>,
    /// The decoded claims.
    pub claims: Map<String, Value>,
    /// The signature was not checked (`--offline`).
    pub offline: bool,
    /// The keys could not be had, so the signature is unknown.
    #[serde(skip)]
    pub undecided: bool,
}

/// The checks run so far: every one for the troubleshooter; only failures for the service,
/// which needs no more and so allocates nothing for a token that passes.
struct Record {
    every_check: bool,
    checks: Vec<Check>,
}

impl Record {
    fn every_check() -> Record {
        Record { every_check: true, checks: Vec::new() }
    }

    fn failures_only() -> Record {
        Record { every_check: false, checks: Vec::new() }
    }

    fn push(&mut self, check: Check) {
        if self.every_check || check.failed() {
            self.checks.push(check);
        }
    }

    fn extend(&mut self, checks: impl IntoIterator<Item = Check>) {
        for check in checks {
            self.push(check);
        }
    }

    fn first_failure(&self) -> Option<&Check> {
        self.checks.iter().find(|c| c.failed())
    }
}

/// Run every check, or stop at the first failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    FirstFailure,
    Everything { offline: bool },
}

impl TokenService {
    /// The whole check of `token` for `teamspace`, as `authorize` and `introspect` answer it.
    pub async fn check(&self, teamspace: &TeamspaceTokens, token: &str) -> Verdict {
        let started = Instant::now();
        let verdict = self.decide(teamspace, token).await;
        let outcome = match &verdict {
            Verdict::Accepted(_) => Ok(()),
            Verdict::Refused { reason, .. } => Err(Some(*reason)),
            Verdict::Undecided { .. } => Err(None),
        };
        teamspace.counters.observe(outcome, started.elapsed().as_secs_f64());
        // Only when it is logged: a flood of forged tokens should not cost a second decode.
        if let (Verdict::Refused { reason, detail }, true) = (&verdict, tracing::enabled!(tracing::Level::DEBUG)) {
            // Debug formatting escapes control characters: the detail quotes the token's claims.
            let oid = jws::decode(token).ok().and_then(|j| rules::object_id(&j));
            tracing::debug!(teamspace = %teamspace.name, reason = reason.code(), ?detail, ?oid, "token refused");
        }
        verdict
    }

    async fn decide(&self, teamspace: &TeamspaceTokens, token: &str) -> Verdict {
        let now = self.clock.now();
        let key = decisions::hash(token);
        let stage_one = match teamspace.decisions.get(&key, now) {
            Some(remembered) => remembered,
            None => {
                let mut checks = Record::failures_only();
                let (stage_one, expires) =
                    match self.stage_one(teamspace, token, now, Mode::FirstFailure, &mut checks).await {
                        Ok(found) => found,
                        Err(undecided) => return undecided,
                    };
                let remember = match &stage_one {
                    StageOne::Passed(_) => true,
                    StageOne::Refused(reason, _) => decisions::cacheable(*reason),
                };
                if remember {
                    teamspace.decisions.put(key, now, expires, stage_one.clone());
                }
                stage_one
            }
        };
        let token = match stage_one {
            StageOne::Passed(verified) => verified,
            StageOne::Refused(reason, detail) => return Verdict::Refused { reason, detail: detail.to_string() },
        };
        match self.members.find(teamspace.id, token.oid).await {
            Ok(Some(member)) => Verdict::Accepted(Accepted { token, member }),
            Ok(None) => Verdict::Refused {
                reason: Reason::NotProvisioned,
                detail: format!("{} is not provisioned in {}", token.oid, teamspace.name),
            },
            Err(error) => {
                tracing::warn!(%error, teamspace = %teamspace.name, "member look-up failed; the token check cannot decide");
                Verdict::Undecided {
                    why: "the member list cannot be read right now".into(),
                    retry_after: STORE_RETRY_AFTER,
                }
            }
        }
    }

    /// Every check of `token` for `teamspace`, for the troubleshooter; `offline` skips the
    /// signature (no key fetch).
    pub async fn explain(&self, teamspace: &TeamspaceTokens, token: &str, offline: bool) -> Explanation {
        let now = self.clock.now();
        let mut record = Record::every_check();
        let outcome = self.stage_one(teamspace, token, now, Mode::Everything { offline }, &mut record).await;
        let mut checks = record.checks;
        let decoded = jws::decode(token).ok();
        let mut undecided = matches!(outcome, Err(Verdict::Undecided { .. }));
        if let Some(oid) = decoded.as_ref().and_then(rules::object_id) {
            match self.members.find(teamspace.id, oid).await {
                Ok(Some(member)) => checks.push(Check::pass("provisioned", member.record.email.clone())),
                Ok(None) => checks.push(Check::fail(
                    "provisioned",
                    Reason::NotProvisioned,
                    format!("{oid} is not provisioned in {}", teamspace.name),
                    &teamspace.expected,
                )),
                Err(error) => {
                    undecided = true;
                    checks.push(Check::skipped("provisioned", format!("the member list cannot be read: {error}")));
                }
            }
        }
        let failure = checks.iter().find(|c| c.failed()).and_then(|c| c.reason);
        let reason = match (failure, undecided) {
            (Some(reason), _) => Some(reason.code().to_owned()),
            (None, true) => Some("undecided".to_owned()),
            (None, false) => None,
        };
        Explanation {
            accepted: failure.is_none() && !undecided,
            reason,
            checks,
            header: decoded.as_ref().map(|j| j.full_header()).unwrap_or_default(),
            claims: decoded.map(|j| j.all_claims()).unwrap_or_default(),
            offline,
            undecided: failure.is_none() && undecided,
        }
    }

    /// Stage 1 in order, its checks recorded in `checks`. `Ok` with the decision and the
    /// token's expiry; `Err(Verdict::Undecided)` when the keys could not be had.
    async fn stage_one(
        &self,
        teamspace: &TeamspaceTokens,
        token: &str,
        now: Millis,
        mode: Mode,
        checks: &mut Record,
    ) -> Result<(StageOne, Option<Millis>), Verdict> {
        let expected = &teamspace.expected;
        let refused =
            |check: &Check| StageOne::Refused(check.reason.unwrap_or(Reason::Malformed), check.detail.as_str().into());
        let jws = match jws::decode(token) {
            Ok(jws) => jws,
            Err(detail) => {
                let check = Check::fail("format", Reason::Malformed, detail, expected);
                let decision = refused(&check);
                checks.push(check);
                return Ok((decision, None));
            }
        };
        checks.push(Check::pass("format", "a signed JWT (JWS compact form)"));
        let expires = jws
            .claims
            .seconds("exp")
            .ok()
            .flatten()
            .map(|s| Millis(s.saturating_add(rules::CLOCK_SKEW_SECONDS).saturating_mul(1000)));
        let describe = mode != Mode::FirstFailure;
        let before = rules::before_signature(&jws, expected, now.0.div_euclid(1000), describe);
        if mode == Mode::FirstFailure {
            if let Some(check) = before.iter().find(|c| c.failed()) {
                return Ok((refused(check), expires));
            }
        }
        checks.extend(before);
        let mut undecided = None;
        match mode {
            Mode::Everything { offline: true } => {
                checks.push(Check::skipped("signing_key", "not fetched (--offline)"));
                checks.push(Check::skipped("signature", "not checked (--offline)"));
            }
            _ => {
                if let Some(verdict) = self.signature(teamspace, &jws, describe, checks).await {
                    undecided = Some(verdict);
                }
            }
        }
        if mode == Mode::FirstFailure {
            if let Some(verdict) = undecided {
                return Err(verdict);
            }
            if let Some(check) = checks.first_failure() {
                return Ok((refused(check), expires));
            }
        }
        checks.extend(rules::after_signature(&jws, expected, describe));
        if let Some(check) = checks.first_failure() {
            return Ok((refused(check), expires));
        }
        if let Some(verdict) = undecided {
            return Err(verdict);
        }
        match verified(&jws, expected) {
            Some(verified) => Ok((StageOne::Passed(Arc::new(verified)), expires)),
            None => Ok((StageOne::Refused(Reason::MissingOid, "the token has no usable `oid`".into()), expires)),
        }
    }

    /// The `signing_key` and `signature` checks; `Some(Undecided)` when no keys could be had.
    async fn signature(
        &self,
        teamspace: &TeamspaceTokens,
        jws: &Jws<'_>,
        describe: bool,
        checks: &mut Record,
    ) -> Option<Verdict> {
        let expected = &teamspace.expected;
        let Some(kid) = jws.header.kid() else {
            checks.push(Check::skipped("signing_key", "the header names no key"));
            checks.push(Check::skipped("signature", "no key to check it with"));
            return None;
        };
        match self.keys.key(&teamspace.authority, kid).await {
            KeyLookup::Found(key) => {
                let detail =
                    if describe { format!("`{kid}` is one of the tenant's signing keys") } else { String::new() };
                checks.push(Check::pass("signing_key", detail));
                let valid = key.verify(jws.signing_input.as_bytes(), jws.signature);
                checks.push(match valid {
                    Ok(true) => Check::pass("signature", "RS256 signature verified"),
                    Ok(false) => Check::fail(
                        "signature",
                        Reason::BadSignature,
                        format!("the signature does not verify with key `{kid}`"),
                        expected,
                    ),
                    Err(error) => Check::fail(
                        "signature",
                        Reason::BadSignature,
                        format!("the signature cannot be checked: {error}"),
                        expected,
                    ),
                });
                None
            }
            KeyLookup::Unknown { known } => {
                checks.push(Check::fail(
                    "signing_key",
                    Reason::UnknownKey,
                    format!("`{kid}` is not among the {known} signing keys tenant {} publishes", expected.tenant_id),
                    expected,
                ));
                checks.push(Check::skipped("signature", "no key to check it with"));
                None
            }
            KeyLookup::Unavailable { error, retry_after } => {
                checks.push(Check::skipped(
                    "signing_key",
                    format!("the tenant's signing keys cannot be fetched: {error}"),
                ));
                checks.push(Check::skipped("signature", "no key to check it with"));
                Some(Verdict::Undecided {
                    why: format!("the signing keys of tenant {} cannot be fetched", expected.tenant_id),
                    retry_after,
                })
            }
        }
    }
}

/// What a token that passed stage 1 says about itself (`None` without an `oid`, which the
/// `oid` check has already refused).
fn verified(jws: &Jws<'_>, expected: &super::Expectation) -> Option<Verified> {
    let text = |claim| jws.claims.string(claim).ok().flatten().map(str::to_owned);
    let oid = rules::object_id(jws)?;
    let expires_at = jws.claims.seconds("exp").ok().flatten().unwrap_or(0);
    Some(Verified {
        oid,
        tenant_id: expected.tenant_id,
        scopes: rules::scopes(jws),
        expires_at,
        text: AnswerText {
            tenant_id: expected.tenant_id.to_string(),
            oid: oid.to_string(),
            expires_at: Millis(expires_at.saturating_mul(1000)).to_string(),
        },
        issued_at: jws.claims.seconds("iat").ok().flatten(),
        subject: text("sub"),
        client_id: text("azp"),
        issuer: expected.issuer.clone(),
        audience: expected.audience.to_string(),
    })
}
