//! Why a token is refused: a stable code for machines (metrics, `error_description`, JSON) and
//! the fix for people, in the words of the Entra setup guide's troubleshooting.

use serde::Serialize;

use super::rules::Expectation;

/// A refusal's cause. The order of the variants is the order the checks run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Not a JWS compact token, or a claim of the wrong type, or `exp`/`nbf`/`kid` missing.
    Malformed,
    /// `alg` is not RS256 (`none`, HS256, …: no algorithm confusion).
    UnsupportedAlg,
    /// A token for Microsoft Graph, not for the MCP API.
    GraphAudience,
    /// A v1.0 token (issuer `https://sts.windows.net/…`).
    V1Token,
    /// `tid` is another tenant.
    WrongTenant,
    /// `iss` is not the tenant's v2.0 issuer.
    WrongIssuer,
    /// `aud` is another app.
    WrongAudience,
    /// Past `exp` (beyond the allowed clock skew).
    Expired,
    /// Before `nbf` (beyond the allowed clock skew).
    NotYetValid,
    /// `kid` names no key the tenant publishes.
    UnknownKey,
    /// The signature does not verify with the named key.
    BadSignature,
    /// No `oid`, or one that is not a GUID.
    MissingOid,
    /// `scp` lacks the required scope.
    MissingScope,
    /// A good token, but its `oid` is not on the teamspace's list.
    NotProvisioned,
}

/// How a refusal is answered over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 401 `invalid_token`: the token itself is wrong.
    InvalidToken,
    /// 403 `insufficient_scope`.
    InsufficientScope,
    /// 403: a valid token whose user is not provisioned here.
    Forbidden,
}

impl Reason {
    /// Every reason, in check order (metrics pre-register these; tests cover each).
    pub const ALL: [Reason; 14] = [
        Reason::Malformed,
        Reason::UnsupportedAlg,
        Reason::GraphAudience,
        Reason::V1Token,
        Reason::WrongTenant,
        Reason::WrongIssuer,
        Reason::WrongAudience,
        Reason::Expired,
        Reason::NotYetValid,
        Reason::UnknownKey,
        Reason::BadSignature,
        Reason::MissingOid,
        Reason::MissingScope,
        Reason::NotProvisioned,
    ];

    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::UnsupportedAlg => "unsupported_alg",
            Reason::GraphAudience => "graph_audience",
            Reason::V1Token => "v1_token",
            Reason::WrongTenant => "wrong_tenant",
            Reason::WrongIssuer => "wrong_issuer",
            Reason::WrongAudience => "wrong_audience",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::UnknownKey => "unknown_key",
            Reason::BadSignature => "bad_signature",
            Reason::MissingOid => "missing_oid",
            Reason::MissingScope => "missing_scope",
            Reason::NotProvisioned => "not_provisioned",
        }
    }

    /// How the HTTP endpoints answer it.
    pub fn answer(self) -> Answer {
        match self {
            Reason::MissingScope => Answer::InsufficientScope,
            Reason::NotProvisioned => Answer::Forbidden,
            _ => Answer::InvalidToken,
        }
    }

    /// What to do about it, for this teamspace's configuration.
    pub fn fix(self, expected: &Expectation) -> String {
        let app = expected.audience;
        match self {
            Reason::Malformed => "send the Entra access token itself (the `access_token` of the token response, a JWT with three dot-separated parts), not an ID token, a refresh token or a truncated copy".into(),
            Reason::UnsupportedAlg => "Entra signs access tokens with RS256; a token with another `alg` was not issued by Entra for this API".into(),
            Reason::GraphAudience => format!("this is a token for Microsoft Graph, which cannot be validated by anyone but Graph; request a token for the MCP API app instead (scope `api://{app}/{}` or `api://{app}/.default`)", expected.required_scope),
            Reason::V1Token => format!("set `\"requestedAccessTokenVersion\": 2` in the manifest of the MCP API app ({app}) so Entra issues v2.0 tokens, then sign in again"),
            Reason::WrongTenant => format!("the token was issued by another directory; sign in with an account of tenant {}, or set this teamspace's `tenant_id` to the tenant that issues the tokens", expected.tenant_id),
            Reason::WrongIssuer => format!("the token must be issued by `{}`; check the teamspace's `tenant_id` and `authority_url` (sovereign clouds have their own)", expected.issuer),
            Reason::WrongAudience => format!("the token is for another app (often the APIM gateway app); the token Context7 sees must be the on-behalf-of token for the MCP API app, audience {app}"),
            Reason::Expired => "the token has expired; the client must get a new one (Entra access tokens last 60–90 minutes)".into(),
            Reason::NotYetValid => "the token is not valid yet; check the clock of the machine that checks tokens (at most 5 minutes of skew is allowed)".into(),
            Reason::UnknownKey => "the token names a signing key the tenant does not publish; it was not issued by this tenant (or by Entra at all), or it is a token for another resource such as Microsoft Graph".into(),
            Reason::BadSignature => "the signature does not match: the token was altered or forged; get a new token from Entra".into(),
            Reason::MissingOid => "the token has no user object id (`oid`); use a delegated (user) token, not an app-only one".into(),
            Reason::MissingScope => format!("the token lacks the scope `{scope}`; expose `{scope}` on the MCP API app and have the on-behalf-of request ask for `api://{app}/.default` (or `api://{app}/{scope}`)", scope = expected.required_scope),
            Reason::NotProvisioned => "the user is not on this teamspace's list: add them (`c7sync members add`), or assign them to the Entra group or enterprise app a configured source reads, then wait for its next sync".into(),
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}
