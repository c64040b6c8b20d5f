//! `c7sync teamspace list`: what is configured, how many members, how each source last ran.
//! `c7sync teamspace test`: the dashboard's "Test connection" for the tenant configuration.

use clap::{Args, Subcommand};

use super::output::{cell, print_json, table, Format, ReportFormat};
use super::{Context, Exit};

#[derive(Debug, Subcommand)]
pub enum TeamspaceCommand {
    /// Teamspaces with member counts and the last run of each source
    List(ListArgs),
    /// Test connection: fetch the tenant's discovery document and signing keys
    Test(TestArgs),
}

/// Arguments of `c7sync teamspace test`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Fetches {authority_url}/{tenant_id}/v2.0/.well-known/openid-configuration, confirms that it
states the issuer tokens must carry, then fetches the signing keys from its jwks_uri: what the
token check (`c7sync token check`, /v1/.../authorize) needs to verify signatures.
Exit 0 when all of it works, 1 with the reason when not.

Example:
  c7sync teamspace test acme")]
pub struct TestArgs {
    /// The teamspace
    teamspace: String,
    /// Output format
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

pub async fn run(context: &Context, command: &TeamspaceCommand) -> anyhow::Result<Exit> {
    match command {
        TeamspaceCommand::List(args) => list(context, args).await,
        TeamspaceCommand::Test(args) => test(context, args).await,
    }
}

async fn test(context: &Context, args: &TestArgs) -> anyhow::Result<Exit> {
    let teamspace = context.config.teamspace(&args.teamspace)?;
    let (authority, result) = crate::admin::teamspaces::test_connection(teamspace).await;
    if args.format == ReportFormat::Json {
        let body = match &result {
            Ok(found) => serde_json::json!({ "ok": true, "teamspace": args.teamspace, "discovery": found }),
            Err(error) => serde_json::json!({
                "ok": false, "teamspace": args.teamspace,
                "discovery_url": authority.discovery_url(), "error": error.to_string(),
            }),
        };
        print_json(&body)?;
        return Ok(if result.is_ok() { Exit::Success } else { Exit::Failure });
    }
    outln!("Discovery  {}", authority.discovery_url());
    match result {
        Ok(found) => {
            outln!("Issuer     {} ✓", found.issuer);
            outln!(
                "Keys       {}: {} signing keys ({})",
                found.jwks_uri,
                found.key_ids.len(),
                found.key_ids.join(", ")
            );
            outln!("OK: tokens of tenant {} for audience {} can be checked.", teamspace.tenant_id, teamspace.audience);
            Ok(Exit::Success)
        }
        Err(error) => {
            outln!("FAILED: {error}");
            Ok(Exit::Failure)
        }
    }
}

async fn list(context: &Context, args: &ListArgs) -> anyhow::Result<Exit> {
    let configured: Vec<&str> = context.config.teamspaces.iter().map(|t| t.name.as_str()).collect();
    let summaries: Vec<_> = context
        .store()
        .teamspace_summaries()
        .await?
        .into_iter()
        .filter(|s| configured.contains(&s.name.as_str()))
        .collect();
    if args.format == Format::Json {
        print_json(&summaries)?;
        return Ok(Exit::Success);
    }
    let mut rows = Vec::new();
    for summary in &summaries {
        if summary.sources.is_empty() {
            rows.push([
                summary.name.clone(),
                summary.tenant_id.clone(),
                summary.members.to_string(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
        }
        for (i, source) in summary.sources.iter().enumerate() {
            let first = i == 0;
            let last_run = match (&source.last_run_id, &source.last_outcome, &source.last_run_at) {
                (Some(id), Some(outcome), Some(at)) => format!("#{id} {outcome} {at}"),
                _ => "never".into(),
            };
            rows.push([
                if first { summary.name.clone() } else { String::new() },
                if first { summary.tenant_id.clone() } else { String::new() },
                if first { summary.members.to_string() } else { String::new() },
                source.source.clone(),
                source.claims.to_string(),
                cell(Some(&last_run)),
            ]);
        }
    }
    outln!("{}", table(["TEAMSPACE", "TENANT", "MEMBERS", "SOURCE", "CLAIMS", "LAST RUN"], rows));
    Ok(Exit::Success)
}
