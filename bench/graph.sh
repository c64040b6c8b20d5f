#!/usr/bin/env bash
# Graph sync benchmark (issue 4): a fake Graph on loopback serves one group of USERS users in
# pages of 999; `c7sync sync` runs it into an empty teamspace, then again with nothing changed.
# Reports wall time and peak RSS of c7sync, and where the time went (from the run's log line:
# read_ms = Graph requests + JSON, then load/plan/write in the database).
# usage: bench/graph.sh [USERS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
USERS="${1:-100000}"
ROUNDS="${2:-3}"
TENANT=00000000-0000-0000-0000-0000000000aa
CLIENT=00000000-0000-0000-0000-0000000000c1
GROUP=90000000-0000-4000-8000-000000000001
export BENCH_GRAPH_SECRET=bench-secret

cargo build --release --quiet --bin c7sync --example fake_graph
work="$(mktemp -d)"
trap 'kill "$fake_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
target/release/examples/fake_graph "$USERS" "$TENANT" "$CLIENT" "$BENCH_GRAPH_SECRET" "$GROUP" >"$work/url" &
fake_pid=$!
for _ in $(seq 100); do [ -s "$work/url" ] && break; sleep 0.1; done
url="$(cat "$work/url")"

cat >"$work/c7sync.toml" <<TOML
database = "sqlite://c7sync.db"
[[teamspaces]]
name = "bench"
tenant_id = "$TENANT"
audience = "00000000-0000-0000-0000-0000000000bb"
  [[teamspaces.sources]]
  kind = "graph"
  id = "dev"
  groups = ["$GROUP"]
  client_id = "$CLIENT"
  client_secret_env = "BENCH_GRAPH_SECRET"
  graph_url = "$url"
  authority_url = "$url"
TOML

bin="$PWD/target/release/c7sync"
run() { # label
  (cd "$work" && RUST_LOG=info /usr/bin/time -f "%e %M" "$bin" --log-format json sync --format json \
      >"$work/out.json" 2>"$work/err.log")
  local time_line run_line
  time_line="$(tail -n 1 "$work/err.log")"
  run_line="$(grep '"run finished"' "$work/err.log" | tail -n 1)"
  python3 - "$1" "$time_line" "$run_line" "$work/out.json" <<'PY'
import json, sys
label, time_line, run_line, out = sys.argv[1:]
wall, rss_kb = time_line.split()
f = json.loads(run_line)["fields"]
report = json.load(open(out))
print(f"  {label:8} wall {float(wall):5.2f} s  peak RSS {int(rss_kb)/1024:6.1f} MiB  "
      f"added {report['added']:>6} unchanged {report['unchanged']:>6} pages {report['listing']['pages']:>3}  "
      f"read {f['read_ms']} ms (Graph+JSON)  load {f['load_ms']}  plan {f['plan_ms']}  write {f['write_ms']} ms")
PY
}
echo "graph sync of $USERS users, $ROUNDS rounds ($(nproc) cores)"
for round in $(seq "$ROUNDS"); do
  rm -f "$work"/c7sync.db*
  run "full"
  run "no-op"
done
