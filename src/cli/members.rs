//! `c7sync members`: list a teamspace's members; add and remove them as the `manual` source
//! (the dashboard's "Add user"), through the reconcile core like every other source.

use clap::{Args, Subcommand, ValueEnum};

use super::output::{cell, print_json, table};
use super::{admin_error, Context, Exit};
use crate::admin;
use crate::admin::members::{NewMember, Removed};
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

async fn add(context: &Context, args: &AddArgs) -> anyhow::Result<Exit> {
    context.config.teamspace(&args.teamspace)?;
    let member = NewMember { oid: &args.oid, email: &args.email, display_name: args.name.as_deref() };
    let (oid, added, report) =
        admin::members::add(&context.reconciler, &args.teamspace, member).await.map_err(admin_error)?;
    outln!("{oid} {} in {} (run {})", added.describe(), args.teamspace, report.run_id);
    Ok(Exit::for_outcome(report.outcome))
}

async fn remove(context: &Context, args: &RemoveArgs) -> anyhow::Result<Exit> {
    let teamspace_id = context.teamspace_id(&args.teamspace).await?;
    let (oid, removed, report) = admin::members::remove(&context.reconciler, &args.teamspace, teamspace_id, &args.oid)
        .await
        .map_err(admin_error)?;
    match removed {
        Removed::Removed => outln!("{oid} removed from {} (run {})", args.teamspace, report.run_id),
        Removed::ClaimDropped { kept_by } => outln!(
            "manual claim on {oid} dropped; it stays a member through {} (run {})",
            kept_by.join(", "),
            report.run_id
        ),
    }
    Ok(Exit::for_outcome(report.outcome))
}
