//! The `c7sync` command line: argument parsing, shared set-up (config → store), dispatch, and
//! the mapping from outcomes and errors to exit codes.

/// `println!` that returns the write error instead of panicking: output piped into
/// `head` closing early is normal, and [`run`] ends quietly on it.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)?
    }};
}

mod audit;
mod events;
mod import;
mod init;
mod members;
mod output;
mod runs;
mod scim_token;
mod serve;
mod sync;
mod teamspace;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::admin::{AdminError, Field};
use crate::clock::Millis;
use crate::config::{self, Config, ConfigError};
use crate::reconcile::{ReconcileError, Reconciler};
use crate::store::{Outcome, Store, StoreError, StoreSettings, TeamspaceSpec};

/// Exit codes (DESIGN §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success, including a dry run.
    Success = 0,
    /// Runtime failure, including a source that could not be read completely.
    Failure = 1,
    /// Usage or configuration error.
    Usage = 2,
    /// A guard held the run back.
    Aborted = 3,
    /// The input had invalid rows.
    InvalidInput = 4,
}

impl Exit {
    /// The exit code for a run's outcome.
    pub fn for_outcome(outcome: Outcome) -> Exit {
        match outcome {
            Outcome::Applied | Outcome::DryRun => Exit::Success,
            Outcome::Aborted => Exit::Aborted,
            Outcome::Failed => Exit::Failure,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

/// A mistake in how the command was called (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A refusal in the CLI's words: a bad flag, file or name is a usage error (exit 2).
pub(crate) fn admin_error(error: AdminError) -> anyhow::Error {
    match error {
        AdminError::Invalid { field, message } => {
            let flag = match field {
                Field::Oid => "--oid",
                Field::Email => "--email",
                Field::DisplayName => "--name",
                Field::Source => "--source",
                Field::File => "FILE",
            };
            UsageError(format!("{flag}: {message}")).into()
        }
        AdminError::NotFound(why) => UsageError(why).into(),
        other => other.into(),
    }
}

/// Provision Context7 teamspace members from Microsoft Entra ID.
///
/// Members come from sources, each a claim that someone belongs: Entra groups through
/// Microsoft Graph and CSV files (the sources in c7sync.toml, run by `sync` now or by `serve` on
/// their schedules), Entra's SCIM provisioning (pushed to `serve`), one-off files (`import`) and
/// manual entries (`members add`). Every change
/// goes through one reconcile core: planned, guarded against mass removal, applied in one
/// transaction, audited (`runs`, `audit`). `serve` also answers Context7's whole token check
/// (signature, issuer, audience, scope, then the member list); `token check` explains it.
#[derive(Debug, Parser)]
#[command(name = "c7sync", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Config file [default: $C7SYNC_CONFIG, else ./c7sync.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Database URL, overriding the config and $C7SYNC_DATABASE_URL (sqlite://c7sync.db, or
    /// postgres://user@host:5432/db for PostgreSQL)
    #[arg(long, global = true, value_name = "URL")]
    pub database: Option<String>,
    /// Log format on stderr (level from $RUST_LOG, default warn; RUST_LOG=info adds a line per run)
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

impl Cli {
    /// One-shot commands print their results, so their logs only need to carry warnings; the
    /// daemon's log is its output.
    pub fn default_log_level(&self) -> &'static str {
        match self.command {
            Command::Serve(_) => "info",
            _ => "warn",
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a commented starter c7sync.toml and create the database
    Init(init::InitArgs),
    /// Import members from a CSV file (ours, an Entra export, or az output)
    Import(import::ImportArgs),
    /// Run configured graph and csv sources now
    Sync(sync::SyncArgs),
    /// The daemon: scheduled sources, SCIM, webhooks, /v1, /metrics, /healthz, /readyz
    Serve(serve::ServeArgs),
    /// Create, list and revoke the bearer tokens Entra's SCIM provisioning uses
    #[command(subcommand)]
    ScimToken(scim_token::ScimTokenCommand),
    /// Teamspaces: member counts and last runs; "Test connection" to the tenant
    #[command(subcommand)]
    Teamspace(teamspace::TeamspaceCommand),
    /// Would Context7 accept this access token? The troubleshooter for 401s
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// List, add and remove members (add/remove act as the `manual` source)
    #[command(subcommand)]
    Members(members::MembersCommand),
    /// Run history, held plans and their approval
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// The audit trail of member changes
    Audit(audit::AuditArgs),
    /// Downstream delivery of member events: list them, retry dead ones
    #[command(subcommand)]
    Events(events::EventsCommand),
}

/// Everything a command needs: the validated config and the open store.
pub struct Context {
    /// Validated config.
    pub config: Config,
    /// The reconcile core over the store.
    pub reconciler: Reconciler,
}

impl Context {
    /// Loads the config, opens (creating and migrating) the database and mirrors the
    /// configured teamspaces into it.
    pub async fn load(cli: &Cli) -> anyhow::Result<Context> {
        let path = config::locate(cli.config.as_deref());
        let config = config::load(&path, cli.database.as_deref())?;
        let store = open_store(&config.database).await?;
        let specs: Vec<TeamspaceSpec> = config.teamspaces.iter().map(|t| t.spec()).collect();
        store.sync_teamspaces(&specs, Millis::now()).await.map_err(|e| match e {
            // The config asks for something the stored state forbids: a configuration error.
            StoreError::Refused(why) => anyhow::Error::new(UsageError(format!("{}: {why}", config.path.display()))),
            other => other.into(),
        })?;
        Ok(Context { config, reconciler: Reconciler::new(store) })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        self.reconciler.store()
    }

    /// The stored teamspace row for a configured teamspace name (exit 2 if not configured).
    pub async fn teamspace_id(&self, name: &str) -> anyhow::Result<i64> {
        self.config.teamspace(name)?;
        Ok(self.store().teamspace(name).await?.id)
    }
}

async fn open_store(url: &str) -> anyhow::Result<Store> {
    Store::open(&StoreSettings::new(url)).await.map_err(|e| match e {
        // Read-only file or folder, full disk: the machine needs fixing, not a retry (exit 2).
        StoreError::Unavailable(why) => UsageError(format!(
            "cannot open database {url}: {why}; this process must be able to write the file and its folder"
        ))
        .into(),
        other => anyhow::Error::new(other).context(format!("cannot open database {url}")),
    })
}

/// Runs the parsed command line and returns the process exit code.
pub async fn run(cli: Cli) -> Exit {
    match dispatch(&cli).await {
        Ok(exit) => exit,
        // The reader of our output went away (`c7sync … | head`): nothing left to say.
        Err(error) if is_broken_pipe(&error) => Exit::Success,
        Err(error) => {
            let exit = classify(&error);
            eprintln!("error: {error:#}");
            exit
        }
    }
}

async fn dispatch(cli: &Cli) -> anyhow::Result<Exit> {
    if let Command::Init(args) = &cli.command {
        return init::run(cli, args).await;
    }
    let context = Context::load(cli).await?;
    let outcome = run_command(cli, &context).await;
    // Closing the store checkpoints the WAL into the database and truncates it, so the command
    // that wrote pays for its own writes, not whichever command comes next.
    context.store().close().await;
    outcome
}

async fn run_command(cli: &Cli, context: &Context) -> anyhow::Result<Exit> {
    match &cli.command {
        Command::Init(args) => init::run(cli, args).await,
        Command::Import(args) => import::run(context, args).await,
        Command::Sync(args) => sync::run(context, args).await,
        Command::Serve(args) => serve::run(context, args).await,
        Command::ScimToken(command) => scim_token::run(context, command).await,
        Command::Teamspace(command) => teamspace::run(context, command).await,
        Command::Token(command) => token::run(context, command).await,
        Command::Members(command) => members::run(context, command).await,
        Command::Runs(command) => runs::run(context, command).await,
        Command::Audit(args) => audit::run(context, args).await,
        Command::Events(command) => events::run(context, command).await,
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    let broken = |e: &std::io::Error| e.kind() == std::io::ErrorKind::BrokenPipe;
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(broken)
            // The CSV writer wraps the I/O error without exposing it as a source.
            || cause.downcast_ref::<csv::Error>().is_some_and(|e| matches!(e.kind(), csv::ErrorKind::Io(io) if broken(io)))
    })
}

/// Maps an error to its exit code: configuration and usage mistakes are 2, the rest 1.
fn classify(error: &anyhow::Error) -> Exit {
    for cause in error.chain() {
        if cause.is::<ConfigError>() || cause.is::<UsageError>() {
            return Exit::Usage;
        }
        if let Some(crate::daemon::DaemonError::NotWritable { .. }) = cause.downcast_ref() {
            return Exit::Usage;
        }
        if let Some(StoreError::NotFound(_)) = cause.downcast_ref::<StoreError>() {
            return Exit::Usage;
        }
        if let Some(ReconcileError::Store(StoreError::NotFound(_))) = cause.downcast_ref::<ReconcileError>() {
            return Exit::Usage;
        }
    }
    Exit::Failure
}
