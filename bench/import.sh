#!/usr/bin/env bash
# CSV import benchmark (issues 2 and 3), every figure measured in the same run:
#   ref      sqlite3 ".mode csv" ".import FILE t" into a WAL-mode table with PRIMARY KEY(oid)
#            (sqlite3 checkpoints when it closes, as c7sync does)
#   first    c7sync import FILE into an empty teamspace (validation, plan, members, claims,
#            audit and outbox rows, one transaction)
#   repeat   the same file again (a no-op plan)
#   replan   the same file again after another source changed the teamspace, so the
#            unchanged-snapshot shortcut cannot apply and all members are loaded and planned
#   merge    the same file in merge mode (the default): planned in full, changes nothing
#   remerge  the same merge again: the unchanged-input shortcut
# Prints the median of ROUNDS rounds (wall seconds, peak RSS) and the ratios to ref. Cases run
# back to back as a user runs them: no `sync` between, so a case that left work behind (a WAL
# to checkpoint, dirty pages) makes the next one pay, and each prints the WAL it left.
#
# With BENCH_POSTGRES=postgres://user@host:port (a server; each round creates its databases
# there), the same cases run on PostgreSQL, and ref is psql's "\copy t FROM FILE CSV" into a
# table with PRIMARY KEY(oid).
#
# usage: bench/import.sh [ROWS] [ROUNDS]        (defaults 1000000 and 3)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
rounds=${2:-3}
out=bench/out
mkdir -p "$out"
file="$out/members-$rows.csv"
[ -f "$file" ] || python3 bench/gen_members.py "$rows" "$file"
file=$(realpath "$file")
server=${BENCH_POSTGRES:-}
if [ -n "$server" ]; then
  command -v psql >/dev/null || { echo "bench needs psql (apt-get install postgresql-client)"; exit 2; }
else
  command -v sqlite3 >/dev/null || { echo "bench needs sqlite3 (apt-get install sqlite3)"; exit 2; }
fi
# C7SYNC_BIN=path measures that build instead (to compare two builds back to back).
if [ -z "${C7SYNC_BIN:-}" ]; then cargo build --release --quiet; fi
bin=${C7SYNC_BIN:-$PWD/target/release/c7sync}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp samples/c7sync.toml "$work/"
sed -i 's/^max_removals = .*/max_removals = "100%"/' "$work/c7sync.toml"

# measure NAME CMD...: appends "NAME seconds peak_kb" to $work/results
measure() {
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/stdout" 2>"$work/stderr"
  echo "$name $(cat "$work/time")" >>"$work/results"
  grep -oE 'duration_ms=[0-9]+.*' "$work/stderr" | tail -1 | sed "s/^/    $name: /" || true
  local wal
  wal=$( (stat -c %s "$work"/*.db-wal 2>/dev/null || true) | sort -n | tail -1)
  echo "    $name: WAL left ${wal:-0} bytes"
}

for round in $(seq "$rounds"); do
  echo "round $round"
  if [ -n "$server" ]; then
    for db in bench_ref bench_c7sync; do
      psql -q "$server/postgres" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
    done
    psql -q "$server/bench_ref" -c "CREATE TABLE t(email TEXT, oid UUID PRIMARY KEY, display_name TEXT)"
    measure ref psql -q "$server/bench_ref" -c "\copy t FROM '$file' CSV HEADER"
    export C7SYNC_DATABASE_URL="$server/bench_c7sync"
  else
    rm -f "$work/ref.db"
    sqlite3 "$work/ref.db" "PRAGMA journal_mode=WAL; CREATE TABLE t(email TEXT, oid TEXT PRIMARY KEY, display_name TEXT);" >/dev/null
    measure ref sqlite3 "$work/ref.db" ".mode csv" ".import --skip 1 $file t"
    rm -f "$work"/c7sync.db*
  fi
  (cd "$work" && "$bin" teamspace list >/dev/null)
  export RUST_LOG=info
  (cd "$work" && measure first "$bin" import "$file" --teamspace acme --mode replace --format json)
  (cd "$work" && measure repeat "$bin" import "$file" --teamspace acme --mode replace --format json)
  (cd "$work" && "$bin" members add --teamspace acme --oid 00000000-0000-4000-8000-000000000001 \
      --email bench@contoso.com >/dev/null)
  (cd "$work" && measure replan "$bin" import "$file" --teamspace acme --mode replace --format json)
  (cd "$work" && measure merge "$bin" import "$file" --teamspace acme --format json)
  (cd "$work" && measure remerge "$bin" import "$file" --teamspace acme --format json)
  unset RUST_LOG
done

python3 - "$work/results" "$rows" <<'PY'
import statistics, sys
results = {}
for line in open(sys.argv[1]):
    name, seconds, kb = line.split()
    results.setdefault(name, []).append((float(seconds), int(kb)))
ref = statistics.median(s for s, _ in results["ref"])
print(f"\n{sys.argv[2]} rows, median of {len(results['ref'])} rounds")
print(f"{'case':8} {'seconds':>8} {'ratio':>6} {'peak MiB':>9} {'peak MB':>8}")
for name in ["ref", "first", "repeat", "replan", "merge", "remerge"]:
    seconds = statistics.median(s for s, _ in results[name])
    peak_kib = max(kb for _, kb in results[name])
    print(f"{name:8} {seconds:8.2f} {seconds / ref:6.2f} {peak_kib / 1024:9.0f} {peak_kib * 1.024 / 1000:8.0f}")
PY
if [ -n "$server" ]; then
  psql -At "$server/postgres" -c "SHOW server_version" | sed 's/^/reference PostgreSQL /'
else
  sqlite3 --version | cut -d' ' -f1 | sed 's/^/reference sqlite3 /'
fi
