#!/usr/bin/env bash
# Token-check benchmark (issue 16): GET /v1/teamspaces/T/authorize under wrk at 16 connections,
# warm (one valid token repeated: the decision cache and the member cache) and cold (a new
# token every request, so every RS256 signature is verified), beside `openssl speed rsa2048`'s
# single-core verify/s and the in-process verify rate of the JWT crate c7sync uses, all in one
# run. Keys come from the fake Entra issuer the tests use (examples/token_bench.rs).
# Needs: wrk, openssl (Debian packages).
# usage: bench/token.sh [TOKENS] [WARM_SECONDS] [COLD_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
TOKENS="${1:-100000}"
WARM_SECONDS="${2:-10}"
COLD_SECONDS="${3:-3}"
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
(cd "$work" && RUST_LOG=warn exec "$bin" serve --listen "127.0.0.1:$PORT") &
pids+=($!)
url="http://127.0.0.1:$PORT/v1/teamspaces/bench/authorize"
until curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null; do sleep 0.2; done
status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat "$work/one.txt")" "$url")
[ "$status" = 200 ] || { echo "a valid token got $status"; exit 1; }

echo "machine: $(nproc) cores; wrk -t$THREADS -c$CONNECTIONS on the same machine"
echo "openssl speed rsa2048, one core: $(openssl speed -seconds 5 rsa2048 2>/dev/null | awk '/^rsa 2048/ {print $NF}') verify/s"
"$root/target/release/examples/token_bench" speed
echo "authorize, warm: one valid token repeated (wrk -d${WARM_SECONDS}s)"
TOKEN_FILE="$work/one.txt" wrk -t$THREADS -c$CONNECTIONS -d"${WARM_SECONDS}s" --latency -s bench/token/one.lua "$url" |
  grep -E 'Requests/sec|  50%|  99%|non-200|Socket errors'
echo "authorize, cold: a new token every request (wrk -d${COLD_SECONDS}s)"
TOKENS_FILE="$work/tokens.txt" THREADS=$THREADS wrk -t$THREADS -c$CONNECTIONS -d"${COLD_SECONDS}s" --latency -s bench/token/many.lua "$url" |
  grep -E 'Requests/sec|  50%|  99%|requests:|non-200|Socket errors'
