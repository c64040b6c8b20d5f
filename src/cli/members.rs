//! `c7sync members`: list a teamspace's members; add and remove them as the `manual` source
//! (the dashboard's "Add user"), through the reconcile core like every other source.

use clap::{Args, Subcommand, ValueEnum};

use super::output::{cell, print_json, table};
use super::{Context, Exit, UsageError};
use crate::domain::{DisplayName, Email, Oid, SourceKind, SourceName, Trigger};
use crate::plan::{Delta, Desired, DesiredClaim};
use crate::reconcile::RunRequest;
use crate::source::csv::formula;

#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// List the members of a teamspace with the sources that claim them
    List(ListArgs),
    /// Provision a developer by hand (the `manual` source)
    Add(AddArgs),
    /// Drop the manual claim on a developer; removes the member if no other source claims it
    Remove(RemoveArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ListFormat {
    Table,
    Json,
    /// Columns tenant_id, oid, email, display_name, role, sources; re-importable with `import`
    Csv,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Teamspace slug
    #[arg(long)]
    teamspace: String,
    /// Output format
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    format: ListFormat,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Teamspace slug
    #[arg(long)]
    teamspace: String,
    /// The developer's Entra object id (GUID)
    #[arg(long)]
    oid: String,
    /// The developer's email
    #[arg(long)]
    email: String,
    /// Display name
    #[arg(long)]
    name: Option<String>,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Teamspace slug
    #[arg(long)]
    teamspace: String,
    /// The developer's Entra object id (GUID)
    #[arg(long)]
    oid: String,
}

pub async fn run(context: &Context, command: &MembersCommand) -> anyhow::Result<Exit> {
    match command {
        MembersCommand::List(args) => list(context, args).await,
        MembersCommand::Add(args) => add(context, args).await,
        MembersCommand::Remove(args) => remove(context, args).await,
    }
}

async fn list(context: &Context, args: &ListArgs) -> anyhow::Result<Exit> {
    let teamspace_id = context.teamspace_id(&args.teamspace).await?;
    let members = context.store().list_members(teamspace_id).await?;
    match args.format {
        ListFormat::Json => print_json(&members)?,
        ListFormat::Csv => {
            let mut writer = csv::Writer::from_writer(std::io::stdout().lock());
            writer.write_record(["tenant_id", "oid", "email", "display_name", "role", "sources"])?;
            for m in &members {
                let oid = m.oid.to_string();
                let sources = m.sources.join(" ");
                let name = m.display_name.as_deref().unwrap_or("");
                let (email, name) = (formula::neutralise(&m.email), formula::neutralise(name));
                writer.write_record([m.tenant_id.as_str(), &oid, &email, &name, &m.role, &sources])?;
            }
            writer.flush()?;
        }
        ListFormat::Table => {
            let rows = members.iter().map(|m| {
                [
                    m.oid.to_string(),
                    m.email.clone(),
                    cell(m.display_name.as_deref()),
                    m.role.clone(),
                    m.sources.join(" "),
                ]
            });
            outln!("{}", table(["OID", "EMAIL", "NAME", "ROLE", "SOURCES"], rows));
            eprintln!("{} member(s) in {}", members.len(), args.teamspace);
        }
    }
    Ok(Exit::Success)
}

fn parse_oid(text: &str) -> Result<Oid, UsageError> {
    text.parse().map_err(|e| UsageError(format!("--oid: {e}")))
}

fn manual_request(teamspace: &str) -> RunRequest {
    RunRequest::new(teamspace, SourceName::manual(), Trigger::Manual)
}

async fn add(context: &Context, args: &AddArgs) -> anyhow::Result<Exit> {
    context.config.teamspace(&args.teamspace)?;
    let oid = parse_oid(&args.oid)?;
    let email: Email = args.email.parse().map_err(|e| UsageError(format!("--email: {e}")))?;
    let display_name = DisplayName::optional(args.name.as_deref()).map_err(|e| UsageError(format!("--name: {e}")))?;
    let delta = Delta::Upsert(DesiredClaim { oid, email, display_name });
    let report = context.reconciler.run(&manual_request(&args.teamspace), Desired::Deltas(vec![delta])).await?;
    let c = report.counts;
    let what = if c.added > 0 {
        "added"
    } else if c.updated > 0 {
        "updated"
    } else if report.plan.is_empty() {
        "already provisioned by hand, unchanged"
    } else {
        "now also claimed by the manual source"
    };
    outln!("{oid} {what} in {} (run {})", args.teamspace, report.run_id);
    Ok(Exit::for_outcome(report.outcome))
}

async fn remove(context: &Context, args: &RemoveArgs) -> anyhow::Result<Exit> {
    let teamspace_id = context.teamspace_id(&args.teamspace).await?;
    let oid = parse_oid(&args.oid)?;
    let Some(member) = context.store().member(teamspace_id, oid).await? else {
        return Err(UsageError(format!("{oid} is not a member of {}", args.teamspace)).into());
    };
    let manual = SourceKind::Manual.as_str();
    if !member.sources.iter().any(|s| s == manual) {
        anyhow::bail!(
            "{oid} was not added by hand: it is provisioned by {}. Remove it at that source \
             (the Entra group, the CSV file, or Entra's provisioning scope)",
            member.sources.join(", ")
        );
    }
    let report =
        context.reconciler.run(&manual_request(&args.teamspace), Desired::Deltas(vec![Delta::Drop(oid)])).await?;
    if report.counts.removed > 0 {
        outln!("{oid} removed from {} (run {})", args.teamspace, report.run_id);
    } else {
        let others: Vec<_> = member.sources.iter().filter(|s| *s != manual).cloned().collect();
        outln!(
            "manual claim on {oid} dropped; it stays a member through {} (run {})",
            others.join(", "),
            report.run_id
        );
    }
    Ok(Exit::for_outcome(report.outcome))
}
