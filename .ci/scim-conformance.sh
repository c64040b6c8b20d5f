#!/usr/bin/env bash
# The independent SCIM conformance suite (scim2-tester, through scim2-cli) against a live
# `c7sync serve` on loopback. Every check must be SUCCESS. Needs the debug binary that
# `cargo test` built, python3 and PyPI. On SQLite by default; with $C7SYNC_DATABASE_URL set
# (postgres://…, an empty database) on that database instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$PWD/target/debug/c7sync"
work="$(mktemp -d)"
venv="${SCIM_TESTER_VENV:-$work/venv}"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT

if [ ! -x "$venv/bin/scim2" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    scim2-cli==0.6.0 scim2-tester==0.5.2 scim2-client==0.13.2 scim2-models==0.12.3
fi

cat >"$work/c7sync.toml" <<TOML
database = "sqlite://c7sync.db"
[[teamspaces]]
name = "conformance"
tenant_id = "00000000-0000-0000-0000-000000000001"
audience = "00000000-0000-0000-0000-000000000002"
  [[teamspaces.sources]]
  kind = "scim"
TOML
cd "$work"
token="$("$bin" scim-token create --teamspace conformance --label scim2-tester 2>/dev/null)"
port=$((20000 + RANDOM % 20000))
RUST_LOG=warn "$bin" serve --listen "127.0.0.1:$port" 2>"$work/serve.log" &
server=$!
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

SCIM_CLI_HEADERS="Authorization: Bearer $token" "$venv/bin/scim2" --url "http://127.0.0.1:$port/scim/v2" test \
  >"$work/report.txt" 2>&1 || true
total=$(grep -cE '^[A-Z]+ ' "$work/report.txt" || true)
success=$(grep -cE '^SUCCESS ' "$work/report.txt" || true)
echo "scim2-tester: $success of $total checks SUCCESS"
if [ "$total" -eq 0 ] || [ "$success" -ne "$total" ]; then
  grep -vE '^SUCCESS ' "$work/report.txt" | grep -E '^[A-Z]+ ' -A2 || cat "$work/report.txt"
  exit 1
fi
