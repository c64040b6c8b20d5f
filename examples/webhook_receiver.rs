//! A signature-checking webhook receiver on 127.0.0.1 for `bench/downstream.sh`: the same one
//! the integration tests use. Prints its URL, then serves until killed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/it/support/receiver.rs"]
mod receiver;

#[tokio::main]
async fn main() {
    let secret = std::env::args().nth(1).expect("usage: webhook_receiver SECRET");
    let receiver = receiver::Receiver::start(secret.as_bytes()).await;
    println!("{}", receiver.url());
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let (accepted, refused) = receiver.with(|r| (r.ids.len(), r.bad_signatures));
        eprintln!("accepted {accepted} events, refused {refused} requests");
    }
}
