//! Stage 1's claim checks, pure: a decoded token, the teamspace's expectation and the time in,
//! one verdict per check out. The order makes the first failure the useful one: a Graph token
//! is reported as a Graph token, a v1 token as a v1 token, before either fails the issuer or
//! the signature check it was never going to pass.

use serde::Serialize;

use super::jws::{Jws, WrongType};
use super::reason::Reason;
use crate::domain::{Oid, TenantId};

/// Clock skew allowed on `exp` and `nbf`, as Microsoft's own validators allow.
pub const CLOCK_SKEW_SECONDS: i64 = 300;

/// The only signing algorithm Entra uses for access tokens.
pub const ALGORITHM: &str = "RS256";

/// Microsoft Graph's audiences, public and sovereign clouds: a token for any of these was asked
/// for the wrong resource.
const GRAPH_AUDIENCES: [&str; 5] = [
    "00000003-0000-0000-c000-000000000000",
    "https://graph.microsoft.com",
    "https://graph.microsoft.us",
    "https://dod-graph.microsoft.us",
    "https://microsoftgraph.chinacloudapi.cn",
];

/// The v1.0 endpoint's issuer prefix.
const V1_ISSUER: &str = "https://sts.windows.net/";

/// What a teamspace accepts: its tenant configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// `tid` and the issuer's tenant.
    pub tenant_id: TenantId,
    /// `aud`: the MCP API app's client id.
    pub audience: uuid::Uuid,
    /// A scope `scp` must contain.
    pub required_scope: String,
    /// `iss`: `{authority_url}/{tenant_id}/v2.0`.
    pub issuer: String,
}

/// One check's verdict; `ok: None` when it could not run (a skipped signature offline).
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Stable name (`alg`, `tenant`, `signature`, …).
    pub check: &'static str,
    /// Passed, failed, or not run.
    pub ok: Option<bool>,
    /// What was found.
    pub detail: String,
    /// What to do, for a failure.
    pub fix: Option<String>,
    /// The refusal a failure means.
    #[serde(skip)]
    pub reason: Option<Reason>,
}

impl Check {
    /// A passed check.
    pub fn pass(check: &'static str, detail: impl Into<String>) -> Check {
        Check { check, ok: Some(true), detail: detail.into(), fix: None, reason: None }
    }

    /// A failed check, with the fix for `reason`.
    pub fn fail(check: &'static str, reason: Reason, detail: impl Into<String>, expected: &Expectation) -> Check {
        Check { check, ok: Some(false), detail: detail.into(), fix: Some(reason.fix(expected)), reason: Some(reason) }
    }

    /// A check that did not run.
    pub fn skipped(check: &'static str, detail: impl Into<String>) -> Check {
        Check { check, ok: None, detail: detail.into(), fix: None, reason: None }
    }

    /// Whether it failed.
    pub fn failed(&self) -> bool {
        self.ok == Some(false)
    }
}

/// The checks that come before the signature: header, tenant, issuer, audience, lifetime.
/// Checks that pass say what they found only when `describe` (the hot path skips the text).
pub fn before_signature(jws: &Jws<'_>, expected: &Expectation, now_seconds: i64, describe: bool) -> [Check; 9] {
    let rules = Rules { jws, expected, describe };
    [
        rules.algorithm(),
        rules.key_id(),
        rules.not_graph(),
        rules.version(),
        rules.tenant(),
        rules.issuer(),
        rules.audience(),
        rules.expiry(now_seconds),
        rules.not_before(now_seconds),
    ]
}

/// The checks on a token whose signature held: whose it is and what it may do.
pub fn after_signature(jws: &Jws<'_>, expected: &Expectation, describe: bool) -> [Check; 2] {
    let rules = Rules { jws, expected, describe };
    [rules.object_id(), rules.scope()]
}

/// The scopes a token carries (`scp` is space-separated).
pub fn scopes(jws: &Jws<'_>) -> Vec<String> {
    jws.claims.string("scp").ok().flatten().unwrap_or_default().split_whitespace().map(str::to_owned).collect()
}

/// The token's `oid`, when it is a GUID.
pub fn object_id(jws: &Jws<'_>) -> Option<Oid> {
    jws.claims.string("oid").ok().flatten().and_then(|text| text.parse().ok())
}

struct Rules<'j, 'a> {
    jws: &'j Jws<'a>,
    expected: &'j Expectation,
    describe: bool,
}

impl Rules<'_, '_> {
    fn pass<D: Into<String>>(&self, check: &'static str, detail: impl FnOnce() -> D) -> Check {
        Check::pass(check, if self.describe { detail().into() } else { String::new() })
    }

    fn fail(&self, check: &'static str, reason: Reason, detail: impl Into<String>) -> Check {
        Check::fail(check, reason, detail, self.expected)
    }

    fn wrong_type(&self, check: &'static str, error: WrongType) -> Check {
        self.fail(check, Reason::Malformed, error.to_string())
    }

    fn algorithm(&self) -> Check {
        match self.jws.header.alg() {
            Some(ALGORITHM) => self.pass("alg", || ALGORITHM),
            Some(other) => {
                self.fail("alg", Reason::UnsupportedAlg, format!("`alg` is `{other}`; only {ALGORITHM} is accepted"))
            }
            None => self.fail("alg", Reason::UnsupportedAlg, "the header has no `alg`"),
        }
    }

    fn key_id(&self) -> Check {
        match self.jws.header.kid() {
            Some(kid) => self.pass("kid", || kid),
            None => self.fail("kid", Reason::Malformed, "the header names no signing key (`kid`)"),
        }
    }

    fn not_graph(&self) -> Check {
        match self.jws.claims.audiences() {
            Err(error) => self.wrong_type("not_graph", error),
            Ok(audiences) => match audiences.iter().find(|a| is_graph(a)) {
                Some(graph) => {
                    self.fail("not_graph", Reason::GraphAudience, format!("`aud` is `{graph}`: Microsoft Graph"))
                }
                None => self.pass("not_graph", || "not a Microsoft Graph token"),
            },
        }
    }

    fn version(&self) -> Check {
        let issuer = self.jws.claims.string("iss");
        let version = self.jws.claims.string("ver");
        match (issuer, version) {
            (Err(error), _) | (_, Err(error)) => self.wrong_type("version", error),
            (Ok(Some(iss)), _) if iss.starts_with(V1_ISSUER) => {
                self.fail("version", Reason::V1Token, format!("`iss` is `{iss}`: a v1.0 token"))
            }
            (_, Ok(Some("1.0"))) => self.fail("version", Reason::V1Token, "`ver` is `1.0`: a v1.0 token"),
            (_, Ok(version)) => self.pass("version", || format!("v{}", version.unwrap_or("2.0"))),
        }
    }

    fn tenant(&self) -> Check {
        let expected = self.expected.tenant_id;
        match self.jws.claims.string("tid") {
            Err(error) => self.wrong_type("tenant", error),
            Ok(None) => self.fail("tenant", Reason::WrongTenant, "the token has no `tid` claim"),
            Ok(Some(tid)) => match tid.parse::<TenantId>() {
                Ok(tenant) if tenant == expected => self.pass("tenant", || tid),
                _ => self.fail("tenant", Reason::WrongTenant, format!("`tid` is `{tid}`, expected {expected}")),
            },
        }
    }

    fn issuer(&self) -> Check {
        let expected = &self.expected.issuer;
        match self.jws.claims.string("iss") {
            Err(error) => self.wrong_type("issuer", error),
            Ok(None) => self.fail("issuer", Reason::WrongIssuer, "the token has no `iss` claim"),
            Ok(Some(iss)) if iss == expected => self.pass("issuer", || iss),
            Ok(Some(iss)) => {
                self.fail("issuer", Reason::WrongIssuer, format!("`iss` is `{iss}`, expected `{expected}`"))
            }
        }
    }

    fn audience(&self) -> Check {
        let expected = self.expected.audience;
        match self.jws.claims.audiences() {
            Err(error) => self.wrong_type("audience", error),
            Ok(audiences) if audiences.is_empty() => {
                self.fail("audience", Reason::WrongAudience, "the token has no `aud` claim")
            }
            Ok(audiences) => {
                if audiences.iter().any(|a| uuid::Uuid::try_parse(a).is_ok_and(|u| u == expected)) {
                    self.pass("audience", || expected.to_string())
                } else {
                    let found = audiences.join(", ");
                    self.fail("audience", Reason::WrongAudience, format!("`aud` is `{found}`, expected {expected}"))
                }
            }
        }
    }

    fn expiry(&self, now: i64) -> Check {
        match self.jws.claims.seconds("exp") {
            Err(error) => self.wrong_type("expiry", error),
            Ok(None) => self.fail("expiry", Reason::Malformed, "the token has no `exp` claim (required)"),
            Ok(Some(exp)) if now > exp.saturating_add(CLOCK_SKEW_SECONDS) => {
                self.fail("expiry", Reason::Expired, format!("expired at {} ({} ago)", at(exp), ago(now - exp)))
            }
            Ok(Some(exp)) => self.pass("expiry", || format!("valid until {}", at(exp))),
        }
    }

    fn not_before(&self, now: i64) -> Check {
        match self.jws.claims.seconds("nbf") {
            Err(error) => self.wrong_type("not_before", error),
            Ok(None) => self.fail("not_before", Reason::Malformed, "the token has no `nbf` claim (required)"),
            Ok(Some(nbf)) if nbf.saturating_sub(CLOCK_SKEW_SECONDS) > now => self.fail(
                "not_before",
                Reason::NotYetValid,
                format!("not valid before {} ({} from now)", at(nbf), ago(nbf - now)),
            ),
            Ok(Some(nbf)) => self.pass("not_before", || format!("valid since {}", at(nbf))),
        }
    }

    fn object_id(&self) -> Check {
        match self.jws.claims.string("oid") {
            Err(error) => self.fail("oid", Reason::MissingOid, error.to_string()),
            Ok(None) => self.fail("oid", Reason::MissingOid, "the token has no `oid` claim"),
            Ok(Some(text)) => match text.parse::<Oid>() {
                Ok(oid) => self.pass("oid", || oid.to_string()),
                Err(_) => self.fail("oid", Reason::MissingOid, format!("`oid` is `{text}`, not a GUID")),
            },
        }
    }

    fn scope(&self) -> Check {
        let required = &self.expected.required_scope;
        let granted = match self.jws.claims.string("scp") {
            Err(error) => return self.fail("scope", Reason::MissingScope, error.to_string()),
            Ok(scp) => scp.unwrap_or_default(),
        };
        if granted.split_whitespace().any(|s| s == required) {
            self.pass("scope", || granted)
        } else if granted.trim().is_empty() {
            self.fail("scope", Reason::MissingScope, format!("the token has no `scp` claim; `{required}` is required"))
        } else {
            self.fail("scope", Reason::MissingScope, format!("`scp` is `{granted}`; `{required}` is required"))
        }
    }
}

fn is_graph(audience: &str) -> bool {
    let trimmed = audience.trim_end_matches('/');
    GRAPH_AUDIENCES.iter().any(|g| g.eq_ignore_ascii_case(trimmed))
}

fn at(seconds: i64) -> String {
    crate::clock::Millis(seconds.saturating_mul(1000)).to_string()
}

fn ago(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use serde_json::{json, Value};

    use super::*;
    use crate::token::jws;

    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const APP: &str = "6e74172b-be56-4843-9ff4-e66a39bb12e3";
    const NOW: i64 = 1_800_000_000;

    fn expected() -> Expectation {
        Expectation {
            tenant_id: TENANT.parse().unwrap(),
            audience: APP.parse().unwrap(),
            required_scope: "mcp.access".into(),
            issuer: format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
        }
    }

    fn good() -> Value {
        json!({
            "iss": format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
            "tid": TENANT, "aud": APP, "ver": "2.0",
            "exp": NOW + 3600, "nbf": NOW - 60, "iat": NOW - 60,
            "oid": "3f2504e0-4f89-41d3-9a0c-0305e82c3301", "scp": "openid mcp.access",
        })
    }

    /// The first failing check's reason, for a token with `header` and `claims`.
    fn first_failure(header: Value, claims: Value) -> Option<Reason> {
        let token = format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let jws = jws::decode(&token).unwrap();
        let mut checks = before_signature(&jws, &expected(), NOW, true).to_vec();
        checks.extend(after_signature(&jws, &expected(), true));
        checks.into_iter().find(Check::failed).and_then(|c| c.reason)
    }

    fn with(changes: &[(&str, Value)]) -> Value {
        let mut claims = good();
        for (name, value) in changes {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(*name);
            } else {
                claims[*name] = value.clone();
            }
        }
        claims
    }

    fn header() -> Value {
        json!({"typ": "JWT", "alg": "RS256", "kid": "key-1"})
    }

    #[test]
    fn a_good_token_passes_every_claim_check() {
        assert_eq!(first_failure(header(), good()), None);
        // aud as an array holding the app passes too (RFC 7519 §4.1.3).
        assert_eq!(first_failure(header(), with(&[("aud", json!([APP]))])), None);
    }

    #[test]
    fn each_claim_failure_has_its_reason() {
        let cases: Vec<(Value, Reason)> = vec![
            (with(&[("tid", json!("00000000-0000-0000-0000-000000000009"))]), Reason::WrongTenant),
            (with(&[("tid", Value::Null)]), Reason::WrongTenant),
            (with(&[("iss", json!(format!("https://login.example/{TENANT}/v2.0")))]), Reason::WrongIssuer),
            (with(&[("iss", Value::Null)]), Reason::WrongIssuer),
            (with(&[("aud", json!("00000000-0000-0000-0000-00000000abcd"))]), Reason::WrongAudience),
            (with(&[("aud", Value::Null)]), Reason::WrongAudience),
            (with(&[("exp", json!(NOW - CLOCK_SKEW_SECONDS - 1))]), Reason::Expired),
            (with(&[("exp", Value::Null)]), Reason::Malformed),
            (with(&[("nbf", json!(NOW + CLOCK_SKEW_SECONDS + 1))]), Reason::NotYetValid),
            (with(&[("nbf", Value::Null)]), Reason::Malformed),
            (with(&[("exp", json!("tomorrow"))]), Reason::Malformed),
            (with(&[("oid", Value::Null)]), Reason::MissingOid),
            (with(&[("oid", json!("not-a-guid"))]), Reason::MissingOid),
            (with(&[("scp", json!("openid profile"))]), Reason::MissingScope),
            (with(&[("scp", Value::Null)]), Reason::MissingScope),
        ];
        for (claims, reason) in cases {
            assert_eq!(first_failure(header(), claims.clone()), Some(reason), "{claims}");
        }
    }

    #[test]
    fn skew_is_allowed_up_to_five_minutes() {
        let edge = with(&[("exp", json!(NOW - CLOCK_SKEW_SECONDS)), ("nbf", json!(NOW + CLOCK_SKEW_SECONDS))]);
        assert_eq!(first_failure(header(), edge), None);
    }

    #[test]
    fn the_useful_reason_comes_first() {
        // A Graph token is from the same tenant but would also fail the audience (and, with
        // Graph's nonce, the signature): it is reported as a Graph token.
        let graph = with(&[("aud", json!("https://graph.microsoft.com")), ("scp", json!("User.Read"))]);
        assert_eq!(first_failure(header(), graph), Some(Reason::GraphAudience));
        let graph_id = with(&[("aud", json!("00000003-0000-0000-c000-000000000000"))]);
        assert_eq!(first_failure(header(), graph_id), Some(Reason::GraphAudience));
        // A v1 token fails the issuer too; it is reported as a v1 token.
        let v1 = with(&[("iss", json!(format!("https://sts.windows.net/{TENANT}/"))), ("ver", json!("1.0"))]);
        assert_eq!(first_failure(header(), v1), Some(Reason::V1Token));
        // Another tenant's token also has another issuer: wrong tenant says more.
        let other = "00000000-0000-0000-0000-000000000009";
        let foreign =
            with(&[("tid", json!(other)), ("iss", json!(format!("https://login.microsoftonline.com/{other}/v2.0")))]);
        assert_eq!(first_failure(header(), foreign), Some(Reason::WrongTenant));
        // An expired token without the scope is reported expired: 401 before 403.
        let stale = with(&[("exp", json!(NOW - 7200)), ("scp", json!("openid"))]);
        assert_eq!(first_failure(header(), stale), Some(Reason::Expired));
    }

    #[test]
    fn only_rs256_is_accepted() {
        for alg in ["none", "HS256", "RS384", "PS256", "ES256"] {
            let header = json!({"alg": alg, "kid": "key-1"});
            assert_eq!(first_failure(header, good()), Some(Reason::UnsupportedAlg), "{alg}");
        }
        assert_eq!(first_failure(json!({"kid": "key-1"}), good()), Some(Reason::UnsupportedAlg));
        assert_eq!(first_failure(json!({"alg": "RS256"}), good()), Some(Reason::Malformed));
    }

    #[test]
    fn every_reason_has_a_fix_naming_the_configuration() {
        for reason in Reason::ALL {
            let fix = reason.fix(&expected());
            assert!(fix.len() > 30, "{reason}: {fix}");
        }
        assert!(Reason::MissingScope.fix(&expected()).contains(&format!("api://{APP}/.default")));
        assert!(Reason::V1Token.fix(&expected()).contains("requestedAccessTokenVersion"));
        assert!(Reason::WrongIssuer.fix(&expected()).contains(&expected().issuer));
    }
}
