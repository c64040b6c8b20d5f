//! `c7sync serve` as a child process: started on a free port, its JSON log collected, stopped
//! with SIGTERM like systemd does.

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Daemon {
    child: Child,
    pub addr: SocketAddr,
    logs: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Daemon {
    /// Starts `c7sync serve --listen 127.0.0.1:0` in `dir` and waits for its "listening" line.
    pub async fn start(dir: &std::path::Path, extra_args: &[&str], envs: &[(&str, &str)]) -> Daemon {
        Daemon::start_in_shell(dir, "", extra_args, envs).await
    }

    /// Like [`Daemon::start`], with `setup` run by `sh` first (`ulimit -n 256; trap '' XFSZ`);
    /// the shell then `exec`s the daemon, which keeps its pid.
    pub async fn start_in_shell(
        dir: &std::path::Path,
        setup: &str,
        extra_args: &[&str],
        envs: &[(&str, &str)],
    ) -> Daemon {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("{setup}\nexec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_c7sync"))
            .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
            .args(extra_args)
            .current_dir(dir)
            .env_remove("C7SYNC_CONFIG")
            .env_remove("C7SYNC_DATABASE_URL")
            .env("RUST_LOG", "info")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line).unwrap_or_else(|_| serde_json::json!({ "raw": line }));
                sink.lock().unwrap().push(value);
            }
        });
        let mut daemon = Daemon { child, addr: "127.0.0.1:0".parse().unwrap(), logs };
        let listening = daemon.wait_for_log(Duration::from_secs(30), |line| message(line) == "listening").await;
        daemon.addr = listening["fields"]["address"].as_str().unwrap().parse().unwrap();
        daemon
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Log lines so far.
    pub fn logs(&self) -> Vec<serde_json::Value> {
        self.logs.lock().unwrap().clone()
    }

    /// Log lines with this message.
    pub fn logged(&self, text: &str) -> Vec<serde_json::Value> {
        self.logs().into_iter().filter(|l| message(l) == text).collect()
    }

    /// Waits until a log line matches, or panics with the log.
    pub async fn wait_for_log(
        &mut self,
        within: Duration,
        matches: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            if let Some(line) = self.logs().into_iter().find(|l| matches(l)) {
                return line;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("c7sync serve exited ({status}) early; log:\n{:#?}", self.logs());
            }
            assert!(Instant::now() < deadline, "no such log line within {within:?}; log:\n{:#?}", self.logs());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The process's peak resident memory so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Sends SIGTERM and waits for the exit.
    pub async fn terminate(mut self, within: Duration) -> (ExitStatus, Vec<serde_json::Value>) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread drain the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return (status, self.logs());
            }
            assert!(Instant::now() < deadline, "c7sync serve did not stop within {within:?}; log:\n{:#?}", self.logs());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A JSON log line's message.
pub fn message(line: &serde_json::Value) -> &str {
    line["fields"]["message"].as_str().unwrap_or_default()
}
