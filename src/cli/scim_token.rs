//! `c7sync scim-token create|list|revoke`: the Secret Token an Entra admin pastes into the
//! enterprise app's provisioning page. Shown once; only its hash is stored.

use clap::{Args, Subcommand};

use super::output::{cell, print_json, table, Format};
use super::{admin_error, Context, Exit, UsageError};
use crate::admin::{scim_tokens, AdminError};
use crate::clock::Millis;

#[derive(Debug, Subcommand)]
pub enum ScimTokenCommand {
    /// Create a token for a teamspace and print it alone on stdout (shown once)
    Create(CreateArgs),
    /// List tokens (never their values)
    List(ListArgs),
    /// Revoke a token by id; requests with it get 401 within a second
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Teamspace slug; it must have a `kind = "scim"` source
    #[arg(long)]
    teamspace: String,
    /// A note to tell tokens apart (e.g. the Entra app's name)
    #[arg(long, default_value = "")]
    label: String,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this teamspace
    #[arg(long)]
    teamspace: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Token id (from `scim-token list`; also the number after `c7s_` in the token)
    id: i64,
}

pub async fn run(context: &Context, command: &ScimTokenCommand) -> anyhow::Result<Exit> {
    match command {
        ScimTokenCommand::Create(args) => create(context, args).await,
        ScimTokenCommand::List(args) => list(context, args).await,
        ScimTokenCommand::Revoke(args) => {
            context.store().revoke_scim_token(args.id, Millis::now()).await?;
            eprintln!("SCIM token {} revoked", args.id);
            Ok(Exit::Success)
        }
    }
}

async fn create(context: &Context, args: &CreateArgs) -> anyhow::Result<Exit> {
    let teamspace = context.config.teamspace(&args.teamspace)?;
    let teamspace_id = context.teamspace_id(&args.teamspace).await?;
    let created = scim_tokens::create(context.store(), teamspace, teamspace_id, &args.label).await.map_err(
        |error| match error {
            AdminError::Conflict(why) => UsageError(format!("{why} ({})", context.config.path.display())).into(),
            other => admin_error(other),
        },
    )?;
    outln!("{}", created.value);
    eprintln!(
        "SCIM token {} for {}: paste it as the Secret Token in Entra; it is not shown again. \
         Tenant URL: https://<your c7sync host>/scim/v2",
        created.id, args.teamspace
    );
    Ok(Exit::Success)
}

async fn list(context: &Context, args: &ListArgs) -> anyhow::Result<Exit> {
    let teamspace_id = match &args.teamspace {
        Some(name) => Some(context.teamspace_id(name).await?),
        None => None,
    };
    let tokens = context.store().list_scim_tokens(teamspace_id).await?;
    if args.format == Format::Json {
        print_json(&tokens)?;
        return Ok(Exit::Success);
    }
    let rows = tokens.iter().map(|t| {
        [
            t.id.to_string(),
            t.teamspace.clone(),
            cell(Some(&t.label)),
            t.created_at.to_string(),
            cell(t.last_used_at.map(|m| m.to_string()).as_deref()),
            cell(t.revoked_at.map(|m| m.to_string()).as_deref()),
        ]
    });
    outln!("{}", table(["ID", "TEAMSPACE", "LABEL", "CREATED", "LAST USED", "REVOKED"], rows));
    Ok(Exit::Success)
}
