#!/usr/bin/env bash
# Graph sync benchmark (issues 4 and 18): a fake Graph on loopback serves one group of USERS
# users in pages of 999.
# Full mode: `c7sync sync` runs it into an empty teamspace, then again with nothing changed.
# Reports wall time and peak RSS of c7sync, and where the time went (from the run's log line:
# read_ms = Graph requests + JSON, then load/plan/write in the database).
# Delta mode: `sync` sets the delta state up, then runs a quiet tick and one with 100 removals
# as new processes (which decode the saved state); then `serve` on a DELTA_EVERY-second
# schedule (default 30) with webhook delivery: its ticks keep the state in memory, and the
# time from 100 removals in the fake to their members gone and every event delivered is timed.
# usage: bench/graph.sh [USERS] [ROUNDS]    (DELTA_EVERY=30, SKIP_FULL=1 to run delta only)
set -euo pipefail
cd "$(dirname "$0")/.."
USERS="${1:-100000}"
ROUNDS="${2:-3}"
TENANT=00000000-0000-0000-0000-0000000000aa
CLIENT=00000000-0000-0000-0000-0000000000c1
GROUP=90000000-0000-4000-8000-000000000001
export BENCH_GRAPH_SECRET=bench-secret

cargo build --release --quiet --bin c7sync --example fake_graph --example webhook_receiver
work="$(mktemp -d)"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
# The fake takes commands (`remove K`, `requests`) on a fifo held open on fd 3.
mkfifo "$work/ctl"
target/release/examples/fake_graph "$USERS" "$TENANT" "$CLIENT" "$BENCH_GRAPH_SECRET" "$GROUP" \
  <"$work/ctl" >"$work/url" 2>"$work/fake.log" &
pids+=($!)
exec 3>"$work/ctl"
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
if [ -z "${SKIP_FULL:-}" ]; then
  echo "graph sync of $USERS users, $ROUNDS rounds ($(nproc) cores)"
  for round in $(seq "$ROUNDS"); do
    rm -f "$work"/c7sync.db*
    run "full"
    run "no-op"
  done
fi

# --- delta mode -----------------------------------------------------------------------------
fake_requests() { # the fake's answered requests so far
  local before; before="$(grep -c '^requests' "$work/fake.log" || true)"
  echo requests >&3
  while [ "$(grep -c '^requests' "$work/fake.log" || true)" = "$before" ]; do sleep 0.01; done
  grep '^requests' "$work/fake.log" | tail -n 1 | cut -d' ' -f2
}
remove() { # K: take the first K members out of the group, and wait until the fake has
  local before; before="$(grep -c '^removed' "$work/fake.log" || true)"
  echo "remove $1" >&3
  while [ "$(grep -c '^removed' "$work/fake.log" || true)" = "$before" ]; do sleep 0.01; done
}
delta_run() { # label: one `sync` in a new process, with what its tick read
  local requests_before; requests_before="$(fake_requests)"
  run "$1"
  python3 - "$work/out.json" "$requests_before" "$(fake_requests)" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["delta"]
print(f"           {d['kind']} tick: {d['requests']} Graph requests (the fake answered "
      f"{int(sys.argv[3]) - int(sys.argv[2])}), {d['member_changes']} member changes"
      + (f"; full because: {d['full_reason']}" if d.get("full_reason") else ""))
PY
}
EVERY="${DELTA_EVERY:-30}"
target/release/examples/webhook_receiver bench-webhook-secret >"$work/receiver.url" 2>"$work/receiver.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/receiver.url" ] && break; sleep 0.1; done
sed -i 's|^  authority_url = .*|&\n  mode = "delta"\n  schedule = "*/'"$EVERY"' * * * * *"|' "$work/c7sync.toml"
printf '\n[delivery]\nwebhook_url = "%s"\nsigning_secret_env = "BENCH_WEBHOOK_SECRET"\n' "$(cat "$work/receiver.url")" \
  >>"$work/c7sync.toml"
export BENCH_WEBHOOK_SECRET=bench-webhook-secret
rm -f "$work"/c7sync.db*
echo "delta mode, $USERS users: sync as new processes"
delta_run "first"
delta_run "quiet"
remove 100
delta_run "remove100"

echo "delta mode, $USERS users: serve on a ${EVERY}-second schedule (state kept in memory)"
(cd "$work" && RUST_LOG=info exec "$bin" --log-format json serve --listen 127.0.0.1:0 >"$work/serve.log" 2>&1) &
pids+=($!)
finished_runs() { grep -c '"run finished"' "$work/serve.log" || true; }
last_tick() { # label: the last tick serve logged, and where its time went
  python3 - "$work/serve.log" "$1" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
reads = [l["fields"] for l in lines if l["fields"].get("message") == "read Graph"]
runs = [l["fields"] for l in lines if l["fields"].get("message") == "run finished"]
r, f = reads[-1], runs[-1]
print(f"  {sys.argv[2]:9} tick {f['duration_ms']} ms (read {f['read_ms']}, load {f['load_ms']}, plan {f['plan_ms']}, "
      f"write {f['write_ms']}), {r['requests']} Graph requests, removed {f['removed']}; read = state {r['state_ms']} "
      f"+ Graph {r['graph_ms']} + snapshot {r['snapshot_ms']} ms + run start")
PY
}
# An event's outbox row is written when delivery tries it: undelivered = events - delivered.
undelivered() {
  sqlite3 "$work/c7sync.db" "SELECT (SELECT count(*) FROM audit_events) - (SELECT count(*) FROM outbox WHERE status = 'delivered')"
}
# Two ticks: the first decodes the saved state, the second is a quiet tick from memory.
while [ "$(finished_runs)" -lt 2 ]; do sleep 0.1; done
last_tick quiet
while [ "$(undelivered)" != "0" ]; do sleep 0.1; done
removed_before="$(sqlite3 "$work/c7sync.db" "SELECT count(*) FROM members")"
start=$(date +%s.%N)
remove 100
ticks="$(finished_runs)"
while [ "$(sqlite3 "$work/c7sync.db" "SELECT count(*) FROM members")" != "$((removed_before - 100))" ] \
  || [ "$(undelivered)" != "0" ]; do sleep 0.05; done
end=$(date +%s.%N)
while [ "$(finished_runs)" = "$ticks" ]; do sleep 0.05; done
last_tick remove100
printf '  removal in the fake -> members gone and all 100 events delivered: %.1f s\n' "$(echo "$end - $start" | bc)"
