//! `c7sync serve`: the daemon.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use super::{Context, Exit};
use crate::daemon::{self, DaemonOptions};

/// Arguments of `c7sync serve`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Runs every graph and csv source that has a `schedule`: once at start-up, then on its cron
schedule (UTC unless the source sets `timezone`). A tick that finds its source still running is
skipped. Serves SCIM 2.0 at /scim/v2 for teamspaces with a scim source (tokens: c7sync
scim-token); the token check for gateways at /v1/teamspaces/T/authorize (the developer's
bearer token in, 200/401/403 out; no admin token needed); with $C7SYNC_ADMIN_TOKEN set, the rest
of /v1 (member look-ups, RFC 7662 /v1/introspect, runs, events); /metrics (behind
$C7SYNC_METRICS_TOKEN when set), /healthz (process up) and /readyz (database reachable and taking
writes). With [delivery], pushes member events to the webhook.

At most [server] max_connections (900) connections at once; a connection that sends no request
for 10 s is closed, a body that stalls for 10 s is answered 408. Exits 2 at start if the
database cannot be written.

SIGTERM or SIGINT stops scheduling, lets runs in progress finish (up to --shutdown-grace), and
exits 0. One log line per run (RUST_LOG=info is the default here); --log-format json for machines.

Examples:
  c7sync serve
  c7sync serve --listen 0.0.0.0:8787 --log-format json")]
pub struct ServeArgs {
    /// Listen address, overriding [server] listen in the config
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Seconds that runs in progress may take to finish after SIGTERM
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    shutdown_grace: u64,
}

pub async fn run(context: &Context, args: &ServeArgs) -> anyhow::Result<Exit> {
    let options = DaemonOptions {
        listen: args.listen.unwrap_or(context.config.server.listen),
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
        max_connections: context.config.server.max_connections,
    };
    daemon::serve(&context.config, context.reconciler.clone(), options).await?;
    Ok(Exit::Success)
}
