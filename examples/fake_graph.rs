//! A fake Microsoft Graph + token endpoint on 127.0.0.1 for `bench/graph.sh`: one group of N
//! users (default 100,000), pages of 999. The same fake the integration tests use.
//!
//! `cargo run --release --example fake_graph -- USERS TENANT CLIENT_ID SECRET GROUP`
//! prints `http://127.0.0.1:PORT` and serves until killed. Lines on stdin change it:
//! `remove K` takes the first K members out of the group (delta queries report it), and
//! `requests` prints how many Graph requests it has answered.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/it/support/fake_graph.rs"]
mod fake_graph;

use fake_graph::{FakeGraph, Member, User};
use tokio::io::AsyncBufReadExt;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [users, tenant, client_id, secret, group] = args.as_slice() else {
        eprintln!("usage: fake_graph USERS TENANT CLIENT_ID SECRET GROUP");
        std::process::exit(2);
    };
    let users: u128 = users.parse().expect("USERS is a number");
    let group: uuid::Uuid = group.parse().expect("GROUP is a GUID");
    let fake = FakeGraph::start(tenant, client_id, secret, 999).await;
    let members = (0..users).map(|n| Member::User(User::numbered(n))).collect();
    fake.set_group(group, members);
    println!("{}", fake.url());
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["remove", count] => {
                let count: usize = count.parse().expect("remove K");
                let mut members = fake.group(group);
                members.drain(..count.min(members.len()));
                fake.set_group(group, members);
                eprintln!("removed {count}");
            }
            ["requests"] => eprintln!("requests {}", fake.request_count()),
            _ => eprintln!("unknown command: {line}"),
        }
    }
    std::future::pending::<()>().await;
}
