#!/usr/bin/env bash
# Downstream benchmark (issue 6): after a 100,000-member import, how long `c7sync serve` takes
# to deliver every member event to a loopback webhook receiver that checks each signature; then
# the member look-up `GET /v1/teamspaces/{t}/members/{oid}` under wrk.
# Needs: wrk, sqlite3, python3. With BENCH_POSTGRES=postgres://user@host:port, c7sync keeps its
# state on that server (in a database bench_downstream it creates) instead of SQLite; needs psql.
# usage: bench/downstream.sh [MEMBERS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
MEMBERS="${1:-100000}"
SECONDS_EACH="${2:-10}"
work="$(mktemp -d)"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
export BENCH_WEBHOOK_SECRET=bench-signing-secret C7SYNC_ADMIN_TOKEN=bench-admin-token

cargo build --release --quiet --bin c7sync --example webhook_receiver
python3 bench/gen_members.py "$MEMBERS" "$work/members.csv"
cut -d, -f2 "$work/members.csv" | tail -n +2 >"$work/oids.txt"
target/release/examples/webhook_receiver "$BENCH_WEBHOOK_SECRET" >"$work/url" 2>"$work/receiver.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/url" ] && break; sleep 0.1; done

database="sqlite://c7sync.db"
undelivered() { sqlite3 c7sync.db "$1"; }
if [ -n "${BENCH_POSTGRES:-}" ]; then
  psql -q "$BENCH_POSTGRES/postgres" -c "DROP DATABASE IF EXISTS bench_downstream" -c "CREATE DATABASE bench_downstream"
  database="$BENCH_POSTGRES/bench_downstream"
  undelivered() { psql -At "$database" -c "$1"; }
fi
cat >"$work/c7sync.toml" <<TOML
database = "$database"
[[teamspaces]]
name = "bench"
tenant_id = "00000000-0000-0000-0000-000000000001"
audience = "00000000-0000-0000-0000-000000000002"
[delivery]
webhook_url = "$(cat "$work/url")"
signing_secret_env = "BENCH_WEBHOOK_SECRET"
TOML
cd "$work"
"$root/target/release/c7sync" import members.csv --teamspace bench >/dev/null
echo "delivery of $MEMBERS member events ($(nproc) cores, receiver on the same machine)"
start=$(date +%s.%N)
RUST_LOG=warn "$root/target/release/c7sync" serve --listen 127.0.0.1:18921 &
pids+=($!)
while :; do
  # An event's outbox row is written when delivery tries it: undelivered = events - delivered.
  left=$(undelivered "SELECT (SELECT count(*) FROM audit_events) - (SELECT count(*) FROM outbox WHERE status = 'delivered')" 2>/dev/null || echo "?")
  [ "$left" = "0" ] && break
  sleep 0.05
done
end=$(date +%s.%N)
printf '  all %d events delivered in %.2f s (from serve start; the receiver verified every signature)\n' \
  "$MEMBERS" "$(echo "$end - $start" | bc)"
tail -n 1 receiver.log
for pass in cold warm; do
  # cold: answers come from the database and fill the look-up cache; warm: the same oids again.
  echo "member look-up ($pass): wrk -t2 -c32 -d${SECONDS_EACH}s GET /v1/teamspaces/bench/members/{random oid}"
  OIDS="$work/oids.txt" ADMIN_TOKEN="$C7SYNC_ADMIN_TOKEN" \
    wrk -t2 -c32 -d"${SECONDS_EACH}s" --latency -s "$root/bench/downstream/lookup.lua" http://127.0.0.1:18921 |
    grep -E 'Requests/sec|  50%|  99%|Non-2xx|Socket errors'
done
