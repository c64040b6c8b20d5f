//! A real PostgreSQL for the tests: the server `C7SYNC_TEST_DATABASE_URL` names (what `.ci/run`
//! starts), or else one this test process starts for itself from Debian's `postgresql`
//! package (`initdb` into a temp folder, as the `postgres` user when running as root, on a
//! loopback port). Each test gets a database of its own on it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};
use tokio::sync::OnceCell;

/// The variable that points the tests at a running server: `postgres://user@host:port/db`.
pub const URL_VARIABLE: &str = "C7SYNC_TEST_DATABASE_URL";

/// A server this process started. Statics are never dropped, so a watcher stops it and removes
/// its folder once this process has exited ([`stop_at_exit`]).
struct Cluster {
    url: String,
}

static SERVER: OnceCell<Cluster> = OnceCell::const_new();
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// The newest installed server's programs (`/usr/lib/postgresql/<major>/bin`).
fn bin_dir() -> PathBuf {
    let mut majors: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (apt-get install postgresql), and C7SYNC_TEST_DATABASE_URL is unset")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let major = entry.file_name().to_str()?.parse().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .collect();
    majors.sort();
    majors.pop().expect("no server under /usr/lib/postgresql").1
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// Runs a server program, as `postgres` when we are root (the server refuses root).
fn run_as_server_user(program: &Path, args: &[&str]) {
    let mut command = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    let output = command.args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{} {args:?} failed: {}{}",
        program.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A server of its own, for a test that stops and starts it (an outage).
pub struct OwnServer {
    /// Its maintenance database.
    pub url: String,
    pg_ctl: PathBuf,
    data: PathBuf,
    options: String,
    log: PathBuf,
}

impl OwnServer {
    /// Initialises and starts a server in a new folder; it is stopped once this process ends.
    pub fn start() -> OwnServer {
        let dir = tempfile::Builder::new().prefix("c7sync-pg").tempdir().unwrap().keep();
        let data = dir.join("data");
        if is_root() {
            let status = Command::new("chown").args(["postgres:postgres"]).arg(&dir).status().unwrap();
            assert!(status.success(), "chown of the cluster folder failed");
        }
        let bin = bin_dir();
        let data_arg = data.to_str().unwrap();
        run_as_server_user(&bin.join("initdb"), &["-D", data_arg, "-A", "trust", "-U", "postgres", "--no-sync"]);
        let port = free_port();
        let options = format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", dir.to_str().unwrap());
        let server = OwnServer {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            pg_ctl: bin.join("pg_ctl"),
            log: dir.join("server.log"),
            data: data.clone(),
            options,
        };
        server.resume();
        stop_at_exit(bin.join("pg_ctl"), &data, &dir);
        server
    }

    /// Stops it, closing every connection (fast mode: no client is waited for).
    pub fn stop(&self) {
        run_as_server_user(&self.pg_ctl, &["-D", self.data.to_str().unwrap(), "-m", "fast", "-w", "stop"]);
    }

    /// Starts it again on the same port and data.
    pub fn resume(&self) {
        let data = self.data.to_str().unwrap();
        let log = self.log.to_str().unwrap();
        run_as_server_user(&self.pg_ctl, &["-D", data, "-l", log, "-o", &self.options, "-w", "-t", "60", "start"]);
    }
}

fn start_cluster() -> Cluster {
    Cluster { url: OwnServer::start().url }
}

/// Stops the server (immediate mode) and removes its folder once this process has exited,
/// however it exited: a shell watches for it.
fn stop_at_exit(pg_ctl: PathBuf, data: &Path, dir: &Path) {
    let parent = std::process::id();
    let script = format!(
        "while kill -0 {parent} 2>/dev/null; do sleep 1; done; {} {} -D {} -m immediate stop >/dev/null 2>&1; rm -rf {}",
        if is_root() { "runuser -u postgres --" } else { "" },
        pg_ctl.display(),
        data.display(),
        dir.display()
    );
    // Never waited for: it must outlive this process, and init reaps it once we are gone.
    #[allow(clippy::zombie_processes)]
    Command::new("sh").args(["-c", &script]).spawn().unwrap();
}

/// The server's URL (its maintenance database).
async fn server_url() -> String {
    if let Ok(url) = std::env::var(URL_VARIABLE) {
        return url;
    }
    SERVER.get_or_init(|| async { tokio::task::spawn_blocking(start_cluster).await.unwrap() }).await.url.clone()
}

/// A fresh, empty database for one test, and its URL.
pub async fn fresh_database() -> String {
    fresh_database_on(&server_url().await).await
}

/// A fresh, empty database on the server at `server` (its maintenance database's URL).
pub async fn fresh_database_on(server: &str) -> String {
    let server = server.to_owned();
    let admin = PgPoolOptions::new().max_connections(1).connect(&server).await.unwrap();
    let name = format!("c7sync_test_{}_{}", std::process::id(), DATABASES.fetch_add(1, Ordering::Relaxed));
    admin.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
    admin.close().await;
    let (base, _) = server.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// A pool on `url`.
pub async fn pool(url: &str) -> PgPool {
    PgPoolOptions::new().max_connections(4).connect(url).await.unwrap()
}
