#!/usr/bin/env bash
# Console pages at scale (issue 19: "pages that stay fast at 1M members"): after importing
# MEMBERS members, the time `c7sync serve` takes to answer a signed-in browser's requests for a
# teamspace's members page — the first page, a page deep in the keyset, a search for an exact
# object id, for a term many members share and for a term one member has — as curl measures
# them (median of ROUNDS, back to back, the first request of each kind included). Then the
# same file's dry-run re-import through the write API (the console's upload path) beside
# `c7sync import --dry-run`, back to back, once each per round.
# Needs: python3, curl, bc. usage: bench/console.sh [MEMBERS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
MEMBERS="${1:-1000000}"
ROUNDS="${2:-5}"
PORT=18931
work="$(mktemp -d)"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
export C7SYNC_ADMIN_TOKEN=bench-console-admin-token

cargo build --release --quiet --bin c7sync
python3 bench/gen_members.py "$MEMBERS" "$work/members.csv"
cat >"$work/c7sync.toml" <<TOML
database = "sqlite://c7sync.db"
[[teamspaces]]
name = "bench"
tenant_id = "00000000-0000-0000-0000-000000000001"
audience = "00000000-0000-0000-0000-000000000002"
TOML
cd "$work"
"$root/target/release/c7sync" import members.csv --teamspace bench >/dev/null
RUST_LOG=warn "$root/target/release/c7sync" serve --listen 127.0.0.1:$PORT &
pids+=($!)
base="http://127.0.0.1:$PORT"
for _ in $(seq 100); do curl -fs "$base/healthz" >/dev/null && break; sleep 0.1; done

# Sign in as a browser does: the form's cookie and CSRF token, then the token in the POST body.
csrf=$(curl -s -c jar "$base/console/sign-in" | grep -o 'name="csrf" value="[0-9a-f]*"' | cut -d'"' -f4)
curl -s -b jar -c jar -o /dev/null --data-urlencode "csrf=$csrf" --data-urlencode "token=$C7SYNC_ADMIN_TOKEN" \
  "$base/console/sign-in"

middle_oid=$(sed -n "$((MEMBERS / 2 + 1))p" members.csv | cut -d, -f2)
rare_email=$(sed -n "$((MEMBERS * 3 / 4 + 1))p" members.csv | cut -d, -f1)
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
measure() {
  local what="$1" path="$2"
  local times=()
  for _ in $(seq "$ROUNDS"); do
    times+=("$(curl -s -b jar -o body.html -w '%{http_code} %{time_total}' "$base$path")")
  done
  local codes
  codes=$(printf '%s\n' "${times[@]}" | cut -d' ' -f1 | sort -u | tr '\n' ' ')
  local rows
  rows=$(grep -o '<td class="mono">' body.html | wc -l || true)
  printf '  %-44s median %6.1f ms  (HTTP %s; %s row(s) shown)\n' "$what" \
    "$(printf '%s\n' "${times[@]}" | cut -d' ' -f2 | median | awk '{ print $1 * 1000 }')" "$codes" "$rows"
}
echo "console members page, $MEMBERS members, SQLite ($(nproc) cores), median of $ROUNDS"
measure "first page (50 members)" "/console/teamspaces/bench"
measure "a page after the middle oid" "/console/teamspaces/bench?after=$middle_oid"
measure "search: an exact object id" "/console/teamspaces/bench?q=$middle_oid"
measure "search: a common term (\"developer1\")" "/console/teamspaces/bench?q=developer1"
measure "search: one member's email" "/console/teamspaces/bench?q=$rare_email"
measure "search: no match" "/console/teamspaces/bench?q=nobody-here"

echo "dry-run re-import of the same $MEMBERS rows (all unchanged), $ROUNDS rounds, median"
api=() cli=()
for _ in $(seq "$ROUNDS"); do
  api+=("$(curl -s -o api.json -w '%{time_total}' -H "Authorization: Bearer $C7SYNC_ADMIN_TOKEN" \
    -H 'content-type: text/csv' --data-binary @members.csv "$base/v1/teamspaces/bench/imports?dry_run=true")")
  start=$(date +%s.%N)
  "$root/target/release/c7sync" import members.csv --teamspace bench --dry-run >/dev/null
  cli+=("$(echo "$(date +%s.%N) - $start" | bc)")
done
grep -q '"outcome":"dry_run"' api.json || { echo "the API import did not answer a dry run:"; head -c 300 api.json; exit 1; }
printf '  POST /v1/teamspaces/bench/imports (upload)  median %6.2f s\n' "$(printf '%s\n' "${api[@]}" | median)"
printf '  c7sync import --dry-run (file on disk)       median %6.2f s\n' "$(printf '%s\n' "${cli[@]}" | median)"
