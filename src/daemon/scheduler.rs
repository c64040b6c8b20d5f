//! Runs every scheduled source on its cron schedule: once at start-up, then at each tick.
//! A source never runs twice at once — a tick that finds it still running is skipped and
//! logged — and one source failing never stops another.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Millis;
use crate::config::{Config, Schedule, SourceConfig, TeamspaceConfig};
use crate::domain::Trigger;
use crate::reconcile::{ReconcileError, Reconciler, RunOptions};
use crate::sync::{run_source, SourceState};

/// One scheduled source and what it keeps between runs. The state's lock doubles as the
/// "is running" flag: a run holds it for its whole duration.
struct Scheduled {
    teamspace: TeamspaceConfig,
    source: SourceConfig,
    schedule: Schedule,
    state: Arc<tokio::sync::Mutex<SourceState>>,
}

/// Starts a ticker per scheduled source. Tickers stop at `shutdown`; runs already started are
/// tracked by `runs` so the daemon can let them finish.
pub fn start(config: &Config, reconciler: Reconciler, shutdown: CancellationToken, runs: TaskTracker) -> usize {
    let mut started = 0;
    for teamspace in &config.teamspaces {
        for source in &teamspace.sources {
            let Some(schedule) = source.schedule.clone() else { continue };
            let scheduled = Arc::new(Scheduled {
                teamspace: teamspace.clone(),
                source: source.clone(),
                schedule,
                state: Arc::default(),
            });
            tracing::info!(
                teamspace = %teamspace.name,
                source = %source.name,
                schedule = %scheduled.schedule.expression,
                timezone = %scheduled.schedule.timezone,
                "scheduled"
            );
            tokio::spawn(tick(scheduled, reconciler.clone(), shutdown.clone(), runs.clone()));
            started += 1;
        }
    }
    started
}

async fn tick(scheduled: Arc<Scheduled>, reconciler: Reconciler, shutdown: CancellationToken, runs: TaskTracker) {
    // At start, the last tick: a process that starts between ticks catches up once, unless a
    // replica (or this process before a restart) already ran that tick.
    let now = Utc::now();
    launch(&scheduled, &reconciler, &runs, scheduled.schedule.last_at_or_before(now).unwrap_or(now));
    loop {
        let Some(next) = scheduled.schedule.next_after(Utc::now()) else {
            tracing::warn!(source = %scheduled.source.name, "the schedule has no future times; not running it again");
            return;
        };
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        if shutdown.is_cancelled() {
            return;
        }
        launch(&scheduled, &reconciler, &runs, next);
    }
}

/// Runs the tick due at `due`, unless this process is still running the previous one or
/// another replica sharing the database claimed it.
fn launch(scheduled: &Arc<Scheduled>, reconciler: &Reconciler, runs: &TaskTracker, due: DateTime<Utc>) {
    let Ok(mut state) = scheduled.state.clone().try_lock_owned() else {
        tracing::warn!(
            teamspace = %scheduled.teamspace.name,
            source = %scheduled.source.name,
            "the previous run of this source is still going; tick skipped"
        );
        return;
    };
    let scheduled = scheduled.clone();
    let reconciler = reconciler.clone();
    runs.spawn(async move {
        let teamspace = &scheduled.teamspace;
        let source = &scheduled.source;
        let tick = Millis(due.timestamp_millis());
        let store = reconciler.store();
        match store.claim_tick(teamspace.name.as_str(), &source.name.to_string(), tick, Millis::now()).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(teamspace = %teamspace.name, source = %source.name, tick = %tick, "tick already taken by another replica");
                return;
            }
            Err(error) => {
                tracing::error!(teamspace = %teamspace.name, source = %source.name, %error, "could not claim the scheduled tick; skipped");
                return;
            }
        }
        let result =
            run_source(&reconciler, teamspace, source, Trigger::Schedule, RunOptions::default(), &mut state).await;
        // The run's own log line (outcome, counts, duration) comes from the reconcile core;
        // here only what stopped a run from being recorded at all.
        match result {
            Ok(_) => {}
            Err(ReconcileError::AlreadyRunning { run, .. }) => tracing::warn!(
                teamspace = %teamspace.name,
                source = %source.name,
                run_id = run.0,
                "the previous run of this source is still going in another process; tick skipped"
            ),
            Err(error) => {
                tracing::error!(teamspace = %teamspace.name, source = %source.name, %error, "scheduled run could not be recorded")
            }
        }
    });
}
