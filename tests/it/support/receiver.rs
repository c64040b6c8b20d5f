//! A webhook receiver on 127.0.0.1 that verifies c7sync's signatures the way the README tells
//! receivers to, and records what it accepted.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use c7sync::delivery::signature;

#[derive(Default)]
pub struct Received {
    /// Event ids of accepted requests, in arrival order (repeats included).
    pub ids: Vec<i64>,
    /// Requests refused for a bad signature.
    pub bad_signatures: u32,
    /// Requests answered with a scripted failure.
    pub failed: u32,
    /// Answer this many requests with 500 first.
    pub fail_next: u32,
    /// Answer every request with this status instead.
    pub always: Option<u16>,
    /// Wait this long before answering (after recording).
    pub delay: Option<Duration>,
}

/// What the handler shares: the record and the signing secret.
type Shared = (Arc<Mutex<Received>>, Arc<Vec<u8>>);

pub struct Receiver {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<Received>>,
    secret: Vec<u8>,
    server: Option<tokio::task::JoinHandle<()>>,
}

async fn receive(State((state, secret)): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = headers.get(signature::HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    if signature::verify(&secret, header, &body, now).is_err() {
        state.lock().unwrap().bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let delay = {
        let mut s = state.lock().unwrap();
        if let Some(status) = s.always {
            s.failed += 1;
            return StatusCode::from_u16(status).unwrap();
        }
        if s.fail_next > 0 {
            s.fail_next -= 1;
            s.failed += 1;
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        for event in parsed["events"].as_array().unwrap() {
            s.ids.push(event["id"].as_i64().unwrap());
        }
        s.delay
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    StatusCode::NO_CONTENT
}

/// A listener on a port below the kernel's ephemeral range (32768 and up): while a receiver
/// is down, no outgoing connection or `:0` listener of a test running beside it can take its
/// port, and `up` gets it back.
async fn bind_below_ephemeral_range() -> tokio::net::TcpListener {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let offset = std::process::id() % 12_000;
    for _ in 0..12_000 {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = 20_000 + (offset + n) % 12_000;
        if let Ok(listener) = tokio::net::TcpListener::bind(("127.0.0.1", port as u16)).await {
            return listener;
        }
    }
    panic!("no free port in 20000-31999");
}

impl Receiver {
    pub async fn start(secret: &[u8]) -> Receiver {
        let mut receiver = Receiver {
            addr: "127.0.0.1:0".parse().unwrap(),
            state: Arc::default(),
            secret: secret.to_vec(),
            server: None,
        };
        receiver.up().await;
        receiver
    }

    /// (Re)starts listening, on the same port after the first time.
    pub async fn up(&mut self) {
        let listener = if self.addr.port() == 0 {
            bind_below_ephemeral_range().await
        } else {
            tokio::net::TcpListener::bind(self.addr).await.unwrap()
        };
        self.addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/hooks", post(receive))
            .with_state((self.state.clone(), Arc::new(self.secret.clone())));
        self.server = Some(tokio::spawn(async move { axum::serve(listener, app).await.unwrap() }));
    }

    /// Stops listening: connections are refused.
    pub async fn down(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    pub fn ids(&self) -> Vec<i64> {
        self.state.lock().unwrap().ids.clone()
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut Received) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}
