#!/usr/bin/env bash
# Planner benchmark (issue 2): 1,000,000 desired vs 1,000,000 current, half overlapping.
# usage: bench/plan.sh [MEMBERS]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --example plan_bench
for round in 1 2 3; do
  /usr/bin/time -f "  peak RSS %M KB (inputs included)" target/release/examples/plan_bench "${1:-1000000}"
done
