//! Helpers for `bench/token.sh`, on the same fake Entra issuer the integration tests use.
//!
//! - `token_bench speed`: RS256 verifications per second on one thread, through the same
//!   calls c7sync makes (a `DecodingKey` from the published JWK, `jsonwebtoken::crypto::verify`).
//! - `token_bench fake TENANT AUDIENCE OIDS TOKENS DIR`: serves a fake issuer for `TENANT`,
//!   writes `DIR/members.csv` (OIDS members), `DIR/one.txt` (one valid token) and
//!   `DIR/tokens.txt` (TOKENS distinct valid tokens, one a line), prints its URL, and serves
//!   until killed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/it/support/fake_entra.rs"]
mod fake_entra;

use std::io::Write;
use std::time::Instant;

use fake_entra::{access_token_claims, FakeEntra, SigningKey};

fn oid(n: usize) -> String {
    uuid::Uuid::from_u128(0x3f25_04e0_4f89_41d3_9a0c_0000_0000_0000 + n as u128).to_string()
}

fn speed() {
    let key = SigningKey::new("bench", 0);
    let claims = access_token_claims("https://login.microsoftonline.com", "t", "a", &oid(0), "mcp.access");
    let token = key.sign(&claims);
    let (input, signature) = token.rsplit_once('.').unwrap();
    let jwk = key.jwk();
    let rounds = 20_000;
    let rate = |verify: &dyn Fn() -> bool| {
        let started = Instant::now();
        for _ in 0..rounds {
            assert!(verify());
        }
        rounds as f64 / started.elapsed().as_secs_f64()
    };
    // What c7sync uses: OpenSSL, the key's set-up kept between calls.
    let ours = c7sync::token::signature::VerifyingKey::from_jwk_components(
        jwk["n"].as_str().unwrap(),
        jwk["e"].as_str().unwrap(),
    )
    .unwrap();
    let openssl = rate(&|| ours.verify(input.as_bytes(), signature).unwrap());
    // The alternative measured against it: jsonwebtoken on ring, as it ships.
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(serde_json::json!({ "keys": [jwk] })).unwrap();
    let decoding = jsonwebtoken::DecodingKey::from_jwk(&set.keys[0]).unwrap();
    let ring = rate(&|| {
        jsonwebtoken::crypto::verify(signature, input.as_bytes(), &decoding, jsonwebtoken::Algorithm::RS256).unwrap()
    });
    println!("RS256 verify/s, one thread: c7sync (OpenSSL) {openssl:.0}, jsonwebtoken on ring {ring:.0}");
}

async fn fake(args: &[String]) {
    let [tenant, audience, oids, tokens, dir] = args else {
        eprintln!("usage: token_bench fake TENANT AUDIENCE OIDS TOKENS DIR");
        std::process::exit(2);
    };
    let (oids, tokens): (usize, usize) = (oids.parse().unwrap(), tokens.parse().unwrap());
    let dir = std::path::PathBuf::from(dir);
    let fake = FakeEntra::start().await;
    let key = SigningKey::new("bench-key", 0);
    fake.publish(tenant, &key);
    let mut members = std::fs::File::create(dir.join("members.csv")).unwrap();
    writeln!(members, "oid,email,display_name").unwrap();
    for n in 0..oids {
        writeln!(members, "{},dev{n}@contoso.com,Developer {n}", oid(n)).unwrap();
    }
    let base = fake.url();
    let sign = |n: usize| {
        let mut claims = access_token_claims(&base, tenant, audience, &oid(n % oids), "openid mcp.access");
        claims["uti"] = serde_json::json!(format!("bench-{n}"));
        key.sign(&claims)
    };
    std::fs::write(dir.join("one.txt"), sign(0)).unwrap();
    // Signing is the slow part (RSA private-key operations): one thread per core.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunks: Vec<Vec<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| scope.spawn(move || (t..tokens).step_by(threads).map(sign).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("tokens.txt")).unwrap());
    for token in chunks.iter().flatten() {
        writeln!(out, "{token}").unwrap();
    }
    out.flush().unwrap();
    println!("{base}");
    std::future::pending::<()>().await;
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("speed") => speed(),
        Some("fake") => fake(&args[1..]).await,
        _ => {
            eprintln!("usage: token_bench speed | token_bench fake TENANT AUDIENCE OIDS TOKENS DIR");
            std::process::exit(2);
        }
    }
}
