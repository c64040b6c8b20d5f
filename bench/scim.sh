#!/usr/bin/env bash
# SCIM benchmark (issue 5): c7sync serve vs the Python reference server scim2-server, side by
# side on this machine. Each gets 10,000 users loaded the same way (bench/scim/load.py), then
# wrk measures GET /Users?filter=userName eq "..." and POST /Users (random object ids, as
# Entra's are) at 8, 16 and 32 connections.
# Needs: wrk (Debian package), python3 with venv (scim2-server is installed into a venv).
# With BENCH_POSTGRES=postgres://user@host:port, c7sync keeps its state on that server (in a
# database bench_scim it creates) instead of SQLite.
# With BENCH_ONLY=c7sync, scim2-server is left out (to compare two c7sync builds, with
# C7SYNC_BIN=path naming the one to run instead of building).
# usage: bench/scim.sh [USERS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
USERS="${1:-10000}"
SECONDS_EACH="${2:-10}"
CONNECTIONS=32
# POST at each of these: Entra's provisioning service sends a few requests at a time.
POST_CONNECTIONS="${POST_CONNECTIONS:-8 16 32}"
work="$(mktemp -d)"
venv="${SCIM_SERVER_VENV:-$work/venv}"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

only=${BENCH_ONLY:-}
if [ -z "${C7SYNC_BIN:-}" ]; then cargo build --release --quiet --bin c7sync; fi
bin=${C7SYNC_BIN:-$root/target/release/c7sync}
if [ -z "$only" ] && [ ! -x "$venv/bin/scim2-server" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check scim2-server==0.8.3
fi

database="sqlite://c7sync.db"
if [ -n "${BENCH_POSTGRES:-}" ]; then
  psql -q "$BENCH_POSTGRES/postgres" -c "DROP DATABASE IF EXISTS bench_scim" -c "CREATE DATABASE bench_scim"
  database="$BENCH_POSTGRES/bench_scim"
fi
cat >"$work/c7sync.toml" <<TOML
database = "$database"
[[teamspaces]]
name = "bench"
tenant_id = "00000000-0000-0000-0000-000000000001"
audience = "00000000-0000-0000-0000-000000000002"
  [[teamspaces.sources]]
  kind = "scim"
TOML
token="$(cd "$work" && "$bin" scim-token create --teamspace bench 2>/dev/null)"
(cd "$work" && RUST_LOG=warn exec "$bin" serve --listen 127.0.0.1:18901) &
pids+=($!)
if [ -z "$only" ]; then
  "$venv/bin/scim2-server" --port 18902 --bearer-token "$token" >"$work/scim2-server.log" 2>&1 &
  pids+=($!)
fi
sleep 2

bench_one() { # name base prefix
  local name=$1 base=$2 prefix=$3
  local start end
  start=$(date +%s.%N)
  python3 bench/scim/load.py "$base$prefix" "$token" "$USERS"
  end=$(date +%s.%N)
  printf '%s: loaded %d users in %.1f s\n' "$name" "$USERS" "$(echo "$end - $start" | bc)"
  echo "$name: GET /Users?filter=userName eq (wrk -t2 -c$CONNECTIONS -d${SECONDS_EACH}s)"
  TOKEN="$token" USERS="$USERS" SCIM_PREFIX="$prefix" \
    wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" --latency -s bench/scim/get.lua "$base" |
    grep -E 'Requests/sec|  50%|  99%|Non-2xx|Socket errors'
  for connections in $POST_CONNECTIONS; do
    echo "$name: POST /Users, random object ids (wrk -t2 -c$connections -d${SECONDS_EACH}s)"
    TOKEN="$token" SCIM_PREFIX="$prefix" \
      wrk -t2 -c"$connections" -d"${SECONDS_EACH}s" --latency -s bench/scim/post.lua "$base" |
      grep -E 'Requests/sec|  50%|  99%|Non-2xx|Socket errors'
  done
}
echo "SCIM benchmark: $USERS users, $(nproc) cores, wrk on the same machine"
bench_one c7sync http://127.0.0.1:18901 /scim/v2
[ -n "$only" ] || bench_one scim2-server http://127.0.0.1:18902 ""
