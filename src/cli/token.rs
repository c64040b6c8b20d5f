//! `c7sync token check`: the troubleshooter. Would Context7 accept this token for this
//! teamspace, and if not, which check fails and what to fix — the same checks, in the same
//! order, as `/v1/…/authorize`.

use std::collections::HashMap;
use std::io::Read;

use clap::{Args, Subcommand};

use super::output::{print_json, ReportFormat};
use super::{Context, Exit, UsageError};
use crate::clock::Clock;
use crate::lookup::MemberLookup;
use crate::metrics::Metrics;
use crate::token::{Explanation, KeySettings, TokenService};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Would Context7 accept this access token? Every check, and the fix for a failure
    Check(CheckArgs),
}

/// Arguments of `c7sync token check`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Decodes the token (header and claims, never the signature), then runs Context7's checks in
order: algorithm (RS256 only), signing key id, not a Microsoft Graph token, a v2.0 token, tenant
(tid), issuer, audience, expiry and not-before (5 minutes of clock skew), signing key and
signature (the tenant's published keys, fetched from its discovery document), oid, scope, and
finally whether the oid is provisioned in the teamspace. A failure says what to fix.

Paste the token on stdin rather than as an argument: arguments end up in shell history and
are visible to other users in `ps`.

Exit codes: 0 accepted, 4 refused, 1 could not decide (the signing keys cannot be fetched),
2 usage. With --offline the signature is not checked (no network), and the output says so.

Examples:
  pbpaste | c7sync token check --teamspace acme
  c7sync token check --teamspace acme - --format json < token.txt
  c7sync token check --teamspace acme --offline < token.txt")]
pub struct CheckArgs {
    /// Teamspace whose tenant configuration and member list the token is checked against
    #[arg(long)]
    teamspace: String,
    /// The access token; `-` or nothing reads it from stdin
    #[arg(value_name = "TOKEN|-")]
    token: Option<String>,
    /// Check the claims only: fetch no keys, check no signature
    #[arg(long)]
    offline: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
}

pub async fn run(context: &Context, command: &TokenCommand) -> anyhow::Result<Exit> {
    let TokenCommand::Check(args) = command;
    let token = read_token(args.token.as_deref())?;
    let id = context.teamspace_id(&args.teamspace).await?;
    let ids = HashMap::from([(args.teamspace.clone(), id)]);
    let members = MemberLookup::new(context.store().clone());
    let service = TokenService::for_config(
        &context.config,
        &ids,
        members,
        KeySettings::default(),
        Clock::System,
        Metrics::new(),
    )?;
    let Some(teamspace) = service.teamspace(&args.teamspace).cloned() else {
        return Err(UsageError(format!("no teamspace `{}` is configured", args.teamspace)).into());
    };
    let explanation = service.explain(&teamspace, &token, args.offline).await;
    match args.format {
        ReportFormat::Json => print_json(&explanation)?,
        ReportFormat::Text => print_text(&explanation, &teamspace.name)?,
    }
    Ok(if explanation.accepted {
        Exit::Success
    } else if explanation.undecided {
        Exit::Failure
    } else {
        Exit::InvalidInput
    })
}

fn read_token(argument: Option<&str>) -> anyhow::Result<String> {
    let text = match argument {
        Some("-") | None => {
            let mut text = String::new();
            std::io::stdin()
                .take(crate::token::jws::MAX_TOKEN_BYTES as u64 * 4)
                .read_to_string(&mut text)
                .map_err(|e| UsageError(format!("cannot read the token from stdin: {e}")))?;
            text
        }
        Some(token) => token.to_owned(),
    };
    // Pasted tokens come with newlines, quotes or an `Authorization: Bearer` prefix.
    let trimmed = text.trim().trim_matches('"');
    let value = trimmed.strip_prefix("Authorization:").map_or(trimmed, str::trim);
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => value,
    };
    if token.is_empty() {
        return Err(UsageError("no token given: pass it as an argument or on stdin".into()).into());
    }
    Ok(token.to_owned())
}

fn print_text(explanation: &Explanation, teamspace: &str) -> anyhow::Result<()> {
    let show = |map: &serde_json::Map<String, serde_json::Value>| -> anyhow::Result<()> {
        let width = map.keys().map(String::len).max().unwrap_or(0);
        for (name, value) in map {
            // JSON text escapes control characters: a hostile claim cannot rewrite the terminal.
            outln!("  {:width$}  {}", name.escape_debug(), value);
        }
        Ok(())
    };
    if !explanation.header.is_empty() {
        outln!("Header");
        show(&explanation.header)?;
        outln!("Claims");
        show(&explanation.claims)?;
        outln!();
    }
    outln!("Checks for teamspace {teamspace}");
    let width = explanation.checks.iter().map(|c| c.check.len()).max().unwrap_or(0);
    for check in &explanation.checks {
        let mark = match check.ok {
            Some(true) => "✓",
            Some(false) => "✗",
            None => "-",
        };
        outln!("  {mark} {:width$}  {}", check.check, check.detail.escape_debug());
        if let Some(fix) = &check.fix {
            outln!("    {:width$}  fix: {fix}", "");
        }
    }
    outln!();
    match (&explanation.reason, explanation.accepted) {
        (_, true) if explanation.offline => {
            outln!("Accepted by every check that ran; the signature was NOT checked (--offline).")
        }
        (_, true) => outln!("Accepted: Context7 would let this token in."),
        (_, false) if explanation.undecided => {
            outln!("Could not decide: the tenant's signing keys cannot be fetched (see the signing_key check).")
        }
        (Some(reason), false) => outln!("Refused: {reason}."),
        (None, false) => outln!("Refused."),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasted_tokens_are_cleaned_up() {
        for pasted in
            ["abc.def.ghi\n", "\"abc.def.ghi\"", "Bearer abc.def.ghi", "Authorization: Bearer abc.def.ghi\r\n"]
        {
            assert_eq!(read_token(Some(pasted)).unwrap(), "abc.def.ghi", "{pasted:?}");
        }
        assert!(read_token(Some("  ")).is_err());
    }
}
