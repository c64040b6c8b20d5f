//! `serve` under exhaustion and faults that do not heal by retrying: idle and half-sent
//! connections, too few descriptors, a full disk, a deleted database file, a read-only one.
//! Each case waits for the event it needs (a closed socket, a status), never a fixed sleep.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::daemon::Daemon;
use crate::support::*;

const SCIM: &str = "\n  [[teamspaces.sources]]\n  kind = \"scim\"\n";

/// The acme project with a scim source, its token, and extra config appended.
fn scim_project(extra: &str) -> (Project, String) {
    let project = acme_project(&format!("{SCIM}{extra}"));
    let token = project.run(&["scim-token", "create", "--teamspace", "acme"]).expect(0).stdout.trim().to_owned();
    (project, token)
}

/// Reads until the server closes the connection; what it sent before.
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> String {
    let mut received = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut received))
        .await
        .unwrap_or_else(|_| panic!("the server kept the connection open past {within:?}"))
        .unwrap_or_default();
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_half_sent_and_idle_connections_are_closed() {
    let (project, token) = scim_project("");
    let daemon = Daemon::start(project.dir.path(), &[], &[]).await;

    let mut silent = TcpStream::connect(daemon.addr).await.unwrap();
    let mut half_head = TcpStream::connect(daemon.addr).await.unwrap();
    half_head.write_all(b"GET /healthz HTTP/1.1\r\nHost: c7sync\r\n").await.unwrap();
    let mut stalled_body = TcpStream::connect(daemon.addr).await.unwrap();
    let head = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: c7sync\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/scim+json\r\nContent-Length: 100\r\n\r\n{{"
    );
    stalled_body.write_all(head.as_bytes()).await.unwrap();
    let mut idle = TcpStream::connect(daemon.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: c7sync\r\n\r\n").await.unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");

    let limit = Duration::from_secs(30);
    let (silent, half_head, stalled_body, idle) = tokio::join!(
        read_to_close(&mut silent, limit),
        read_to_close(&mut half_head, limit),
        read_to_close(&mut stalled_body, limit),
        read_to_close(&mut idle, limit),
    );
    assert_eq!(silent, "", "nothing was asked, nothing is answered");
    assert!(!half_head.contains("200"), "{half_head}");
    assert!(stalled_body.starts_with("HTTP/1.1 408"), "{stalled_body}");
    assert!(stalled_body.contains("stalled"), "{stalled_body}");
    assert!(idle.ends_with('}'), "the idle keep-alive connection is closed after its answer: {idle}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_idle_connections_under_few_descriptors_heals_by_itself() {
    let (project, token) = scim_project("\n[server]\nmax_connections = 150\n");
    let daemon = Daemon::start_in_shell(project.dir.path(), "ulimit -n 256", &[], &[]).await;
    // Twice the cap and more than the descriptors the daemon has, held open by the client.
    let mut flood = Vec::new();
    for _ in 0..300 {
        flood.push(TcpStream::connect(daemon.addr).await.unwrap());
    }
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let health = client.get(daemon.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let users = client.get(daemon.url("/scim/v2/Users")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(users.status(), StatusCode::OK);
    // The daemon shed the flood itself: the first connections it accepted are closed.
    assert_eq!(read_to_close(&mut flood[0], Duration::from_secs(30)).await, "");
    assert!(daemon.logs().iter().all(|l| l["level"] != "ERROR"), "{:#?}", daemon.logs());
}

async fn post_user(client: &reqwest::Client, daemon: &Daemon, token: &str, n: u128) -> reqwest::Response {
    post_scim_user(
        client,
        &daemon.url("/scim/v2/Users"),
        token,
        &format!("user{n}@contoso.com"),
        uuid::Uuid::from_u128(n),
    )
    .await
    .unwrap()
}

/// Sets the daemon's largest writable file size (`prlimit`, soft limit): `1` fails every write to the
/// database and its WAL the way a full disk does, `unlimited` gives the space back.
fn file_size_limit(daemon: &Daemon, limit: &str) {
    let status = std::process::Command::new("prlimit")
        .args(["--pid", &daemon.pid().to_string(), &format!("--fsize={limit}")])
        .status()
        .unwrap();
    assert!(status.success(), "prlimit {limit}");
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_full_disk_writes_are_503_then_recover_by_themselves() {
    sqlite_only!("the disk under the SQLite file fills");
    let (project, token) = scim_project("");
    // SIGXFSZ ignored, as a full disk kills nobody: writes past the limit fail instead.
    let daemon = Daemon::start_in_shell(project.dir.path(), "trap '' XFSZ", &[], &[]).await;
    let client = reqwest::Client::new();
    assert_eq!(post_user(&client, &daemon, &token, 1).await.status(), StatusCode::CREATED);

    file_size_limit(&daemon, "1:unlimited");
    for n in 2..12 {
        let refused = post_user(&client, &daemon, &token, n).await;
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE, "{}", refused.text().await.unwrap());
        assert_eq!(refused.headers()["retry-after"], "5");
    }
    let ready = client.get(daemon.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE, "/readyz fails while writes cannot succeed");

    file_size_limit(&daemon, "unlimited:unlimited");
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(daemon.url("/readyz")).send().await.unwrap().status() != StatusCode::OK {
        assert!(Instant::now() < deadline, "/readyz did not recover; log:\n{:#?}", daemon.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every connection is usable again, not just one: no transaction left open in the pool.
    for n in 12..32 {
        let created = post_user(&client, &daemon, &token, n).await;
        assert_eq!(created.status(), StatusCode::CREATED, "{}", created.text().await.unwrap());
    }
    let (_, logs) = daemon.terminate(Duration::from_secs(10)).await;
    assert!(!logs.iter().any(|l| l.to_string().contains("non-zero transaction depth")), "{logs:#?}");
    let members = project.run(&["members", "list", "--teamspace", "acme", "--format", "json"]).expect(0).json();
    assert_eq!(members.as_array().unwrap().len(), 21, "exactly the acknowledged writes survived");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_database_refuses_writes_and_fails_readiness() {
    sqlite_only!("the SQLite file is deleted");
    let (project, token) = scim_project("");
    let daemon = Daemon::start(project.dir.path(), &[], &[]).await;
    let client = reqwest::Client::new();
    assert_eq!(post_user(&client, &daemon, &token, 1).await.status(), StatusCode::CREATED);
    for file in ["c7sync.db", "c7sync.db-wal", "c7sync.db-shm"] {
        let _ = std::fs::remove_file(project.path(file));
    }
    let refused = post_user(&client, &daemon, &token, 2).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ready = client.get(daemon.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.text().await.unwrap().contains("was deleted while open"));
    assert!(!project.path("c7sync.db").exists(), "no empty database was created in its place");
}

#[tokio::test]
async fn serve_refuses_a_database_it_cannot_write() {
    sqlite_only!("the SQLite file is not writable");
    let project = acme_project("");
    project.run(&["members", "list", "--teamspace", "acme"]).expect(0);
    // Owned by root and not writable by others; the daemon runs as `nobody`.
    let mode = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    };
    mode(project.dir.path(), 0o755);
    for file in ["c7sync.toml", "c7sync.db", "c7sync.db-wal", "c7sync.db-shm"] {
        if project.path(file).exists() {
            mode(&project.path(file), 0o644);
        }
    }
    let output = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--", env!("CARGO_BIN_EXE_c7sync"), "serve", "--listen", "127.0.0.1:0"])
        .current_dir(project.dir.path())
        .env_remove("C7SYNC_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("c7sync.db"), "the message names the database: {stderr}");
    assert!(stderr.contains("write") || stderr.contains("read-only") || stderr.contains("readonly"), "{stderr}");
}
