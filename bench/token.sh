#!/usr/bin/env bash
# Token-check benchmark (issue 16): GET /v1/teamspaces/T/authorize under wrk at 16 connections,
# warm (one valid token repeated: the decision cache and the member cache) and cold (a new
# token every request, so every RS256 signature is verified; run twice, the second time with wrk
# under SCHED_BATCH), beside `openssl speed rsa2048`'s
# single-core verify/s and the in-process verify rate of the JWT crate c7sync uses, all in one
# run. Keys come from the fake Entra issuer the tests use (examples/token_bench.rs).
# Needs: wrk, openssl, chrt (Debian packages wrk, openssl, util-linux).
# usage: bench/token.sh [TOKENS] [WARM_SECONDS] [COLD_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
TOKENS="${1:-100000}"
WARM_SECONDS="${2:-10}"
COLD_SECONDS="${3:-4}"
# Each run's CPU is read over its middle, from 1 s in to 1 s before its end.
if [ "$WARM_SECONDS" -lt 3 ] || [ "$COLD_SECONDS" -lt 3 ]; then echo "runs of at least 3 s, please"; exit 2; fi
CONNECTIONS=16
THREADS=2
TENANT=11111111-1111-4111-8111-111111111111
AUDIENCE=aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa
PORT=18911
work="$(mktemp -d)"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

cargo build --release --quiet --bin c7sync --example token_bench
# C7SYNC_BIN=path measures that build of c7sync instead (to compare two builds back to back).
bin="${C7SYNC_BIN:-$root/target/release/c7sync}"
echo "signing $TOKENS tokens for the cold run..."
"$root/target/release/examples/token_bench" fake "$TENANT" "$AUDIENCE" 1000 "$TOKENS" "$work" >"$work/authority" &
pids+=($!)
until [ -s "$work/authority" ]; do sleep 0.5; done
cat >"$work/c7sync.toml" <<TOML
database = "sqlite://c7sync.db"
[[teamspaces]]
name = "bench"
tenant_id = "$TENANT"
audience = "$AUDIENCE"
authority_url = "$(cat "$work/authority")"
TOML
(cd "$work" && "$bin" import members.csv --teamspace bench >/dev/null)
url="http://127.0.0.1:$PORT/v1/teamspaces/bench/authorize"
# start_server: a fresh `c7sync serve` (empty decision cache), checked with the valid token.
start_server() {
  (cd "$work" && RUST_LOG=warn exec "$bin" serve --listen "127.0.0.1:$PORT") &
  server=$!
  pids+=($server)
  until curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null; do sleep 0.2; done
  local status
  status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat "$work/one.txt")" "$url")
  [ "$status" = 200 ] || { echo "a valid token got $status"; exit 1; }
}
start_server

echo "machine: $(nproc) cores; wrk -t$THREADS -c$CONNECTIONS on the same machine"
echo "openssl speed rsa2048, one core: $(openssl speed -seconds 5 rsa2048 2>/dev/null | awk '/^rsa 2048/ {print $NF}') verify/s"
"$root/target/release/examples/token_bench" speed
# load NAME LUA_SCRIPT SECONDS PATTERN: one wrk run (at least 3 s), then where the two cores
# went per request over its middle (from 1 s in to 1 s before the end, past wrk's set-up of the
# cold script's tokens): the server's CPU time and wrk's (/proc/PID/stat), and the time both
# cores sat idle (/proc/stat), divided by the requests of that window at the run's rate. A
# ratio to openssl moves with the load generator's share of the cores; the server's
# microseconds per request say what c7sync itself spends.
# WRK_POLICY=batch runs wrk under SCHED_BATCH (see the second cold run below).
load() {
  local name=$1 script=$2 seconds=$3 pattern=$4
  chrt "--${WRK_POLICY:-other}" 0 wrk -t$THREADS -c$CONNECTIONS -d"${seconds}s" --latency -s "$script" "$url" >"$work/wrk-$name" &
  local wrk_pid=$! window=$((seconds - 2)) before after
  sleep 1
  before=$(sample $wrk_pid)
  sleep "$window"
  after=$(sample $wrk_pid)
  wait $wrk_pid
  grep -E "$pattern" "$work/wrk-$name"
  awk -v before="$before" -v after="$after" -v window="$window" -v hz="$(getconf CLK_TCK)" '
    /Requests\/sec/ { rate = $2 }
    END {
      split(before, b); split(after, a); r = rate * window
      printf "per request: server CPU %.1f us, wrk CPU %.1f us, both cores idle %.1f us\n",
        (a[1] - b[1]) / hz / r * 1e6, (a[2] - b[2]) / hz / r * 1e6, (a[3] - b[3]) / hz / r * 1e6
    }' "$work/wrk-$name"
}
# sample WRK_PID: "server_ticks wrk_ticks idle_ticks"
sample() {
  echo "$(awk '{print $14 + $15}' "/proc/$server/stat") $(awk '{print $14 + $15}' "/proc/$1/stat")" \
    "$(awk '/^cpu / {print $5 + $6}' /proc/stat)"
}

echo "authorize, warm: one valid token repeated (wrk -d${WARM_SECONDS}s)"
TOKEN_FILE="$work/one.txt" load warm bench/token/one.lua "$WARM_SECONDS" 'Requests/sec|  50%|  99%|non-200|Socket errors'
echo "authorize, cold: a new token every request (wrk -d${COLD_SECONDS}s)"
TOKENS_FILE="$work/tokens.txt" THREADS=$THREADS load cold bench/token/many.lua "$COLD_SECONDS" \
  'Requests/sec|  50%|  99%|requests:|non-200|Socket errors'
# The same again, on a restarted server (so the same tokens are new to it), with wrk under
# SCHED_BATCH: a waking batch task does not preempt a running one, so wrk's wake-ups no longer
# interrupt the server mid-request and wrk reads answers in batches, as a gateway on another
# machine would cost the server nothing at all. Both lines are printed; neither replaces the other.
kill "$server"; wait "$server" 2>/dev/null || true
start_server
echo "authorize, cold, wrk under SCHED_BATCH (chrt --batch; wrk -d${COLD_SECONDS}s)"
WRK_POLICY=batch TOKENS_FILE="$work/tokens.txt" THREADS=$THREADS load cold-batch bench/token/many.lua "$COLD_SECONDS" \
  'Requests/sec|  50%|  99%|requests:|non-200|Socket errors'
