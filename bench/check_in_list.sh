#!/usr/bin/env bash
# Why migration 0005 rewrote the CHECK constraints: one million rows into an outbox-shaped
# table whose CHECK is an IN list of three constants, against the same rule written with OR.
# SQLite evaluates a CHECK IN list of three or more through a temporary index for every row.
#
# usage: bench/check_in_list.sh        (needs sqlite3)
set -euo pipefail
db=$(mktemp -d)/check.db
trap 'rm -rf "$(dirname "$db")"' EXIT
table() { # NAME CHECK
  echo "CREATE TABLE $1 (teamspace_id INTEGER NOT NULL, event_id INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK ($2), attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (teamspace_id, event_id)) WITHOUT ROWID;"
}
sqlite3 "$db" <<SQL
PRAGMA page_size = 16384;
.output /dev/null
PRAGMA journal_mode = WAL;
.output stdout
CREATE TABLE ids (id INTEGER PRIMARY KEY);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) INSERT INTO ids SELECT x FROM c;
$(table in_list "status IN ('pending', 'delivered', 'dead')")
$(table or_list "status = 'pending' OR status = 'delivered' OR status = 'dead'")
$(table no_check "1")
.timer on
.print in_list
BEGIN; INSERT INTO in_list (teamspace_id, event_id) SELECT 1, id FROM ids; COMMIT;
.print or_list
BEGIN; INSERT INTO or_list (teamspace_id, event_id) SELECT 1, id FROM ids; COMMIT;
.print no_check
BEGIN; INSERT INTO no_check (teamspace_id, event_id) SELECT 1, id FROM ids; COMMIT;
SQL
