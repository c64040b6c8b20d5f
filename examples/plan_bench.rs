//! Planner benchmark (issue 2): 1,000,000 desired claims against 1,000,000 current members,
//! half of them overlapping, some with changed emails. Prints the planning time and what the
//! plan holds; run under `/usr/bin/time -f %M` for peak memory (bench/plan.sh does).
//!
//! cargo run --release --example plan_bench [-- MEMBERS]

// A benchmark harness over inputs it generates itself: an invalid one is a bug to stop on.
#![allow(clippy::expect_used)]

use std::collections::HashMap;
use std::time::Instant;

use c7sync::domain::{fingerprint, Oid, SourceKind};
use c7sync::plan::{CurrentMember, Desired, DesiredClaim, Planner};
use smallvec::smallvec;

fn main() {
    let members: u64 = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
    let me = 1;
    // A simple LCG spreads oids like random GUIDs, reproducibly.
    let oid = |n: u64| Oid::from_u128(u128::from(n.wrapping_mul(0x9E37_79B9_7F4A_7C15)) << 64 | u128::from(n));
    let email = |n: u64| format!("developer{n}@contoso-engineering.com");

    // Current: members 0..N, claimed by this source; desired: N/2..3N/2 (half overlap), where
    // every tenth overlapping member has a new email.
    // Sorted by oid, as the store always hands it over (keyset order of the members table).
    let mut current: Vec<CurrentMember> = (0..members)
        .map(|n| CurrentMember {
            oid: oid(n),
            email_hash: fingerprint::email(&email(n).parse().expect("valid email")),
            name_hash: Some(fingerprint::name(&format!("Developer {n}"))),
            attrs_source: me,
            claims: smallvec![me],
        })
        .collect();
    current.sort_unstable_by_key(|m| m.oid);
    let desired: Vec<DesiredClaim> = (members / 2..members * 3 / 2)
        .map(|n| {
            let address = if n < members && n % 10 == 0 { format!("renamed{n}@contoso.com") } else { email(n) };
            DesiredClaim {
                oid: oid(n),
                email: address.parse().expect("valid email"),
                display_name: format!("Developer {n}").parse().ok(),
            }
        })
        .collect();

    let planner = Planner::new(me, HashMap::from([(me, SourceKind::Csv)]));
    let started = Instant::now();
    let plan = planner.plan(Desired::Snapshot(desired), &current);
    let elapsed = started.elapsed();
    let counts = plan.counts();
    println!(
        "planned {members} desired vs {members} current in {:.3} s: added {}, removed {}, updated {}, unchanged {}",
        elapsed.as_secs_f64(),
        counts.added,
        counts.removed,
        counts.updated,
        counts.unchanged
    );
}
