#!/usr/bin/env bash
# The floor of a first import on PostgreSQL (issue 17): what the server alone spends writing a
# million members' three rows — member, claim, audit event (delivery records nothing until it
# sends an event) — in c7sync's schema,
# against bench/import.sh's reference, psql's "\copy" of the CSV into one table keyed on oid.
#
# The rows are rendered beforehand (as c7sync's first import would write them, in oid order),
# so "four" is psql "\copy" of ready rows into the three tables in one transaction: no file
# reading, no validation, no plan. (The name "four" is from when an outbox row was a fourth.) Rounds alternate ref and four, each on emptied tables after
# a CHECKPOINT, so neither pays the other's write-back.
#
# usage: BENCH_POSTGRES=postgres://user@host:port bench/copy_floor.sh [ROWS] [ROUNDS]
#        (defaults 1000000 and 2; needs psql and python3)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
rounds=${2:-2}
server=${BENCH_POSTGRES:?set BENCH_POSTGRES=postgres://user@host:port}
command -v psql >/dev/null || { echo "bench needs psql (apt-get install postgresql-client)"; exit 2; }
mkdir -p bench/out
file="bench/out/members-$rows.csv"
[ -f "$file" ] || python3 bench/gen_members.py "$rows" "$file"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$file" "$work/members.csv"
cd "$work"

db="$server/bench_floor"
psql -q "$server/postgres" -c "DROP DATABASE IF EXISTS bench_floor" -c "CREATE DATABASE bench_floor"
for migration in "$OLDPWD"/migrations/postgres/*.sql; do psql -q "$db" -f "$migration" >/dev/null; done
psql -q "$db" <<'SQL'
CREATE UNLOGGED TABLE stage (email TEXT, oid UUID, display_name TEXT);
\copy stage FROM members.csv CSV HEADER
CREATE UNLOGGED TABLE ordered AS SELECT row_number() OVER (ORDER BY oid) AS n, email,
    decode(replace(oid::text, '-', ''), 'hex') AS oid, display_name FROM stage;
\copy (SELECT 1, oid, email, display_name, hashtext(email), hashtext(display_name), 'developer', 1, 0, 0 FROM ordered ORDER BY n) TO members.txt
\copy (SELECT 1, oid, 1, 0 FROM ordered ORDER BY n) TO claims.txt
\copy (SELECT n, 1, 1, 1, 'added', oid, email, display_name, 'developer', NULL, NULL, 0 FROM ordered ORDER BY n) TO audit.txt
DROP TABLE stage, ordered;
SQL

seconds() { # CMD...: wall seconds of CMD
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}
fresh() {
  psql -q "$db" -c "DROP TABLE IF EXISTS t" -c "CREATE TABLE t (email TEXT, oid UUID PRIMARY KEY, display_name TEXT)" \
    -c "TRUNCATE members, claims, audit_events, outbox" -c "CHECKPOINT"
}
four() {
  psql -q "$db" <<'SQL'
BEGIN;
\copy members FROM members.txt
\copy claims FROM claims.txt
\copy audit_events FROM audit.txt
COMMIT;
SQL
}

echo "$rows rows; seconds per round"
echo "round  ref    four   four/ref"
for round in $(seq "$rounds"); do
  fresh
  ref=$(seconds psql -q "$db" -c "\\copy t FROM members.csv CSV HEADER")
  fresh
  all=$(seconds four)
  printf "%-6s %-6.2f %-6.2f %.2f\n" "$round" "$ref" "$all" "$(echo "$all / $ref" | bc -l)"
done
psql -q "$server/postgres" -c "DROP DATABASE bench_floor"
