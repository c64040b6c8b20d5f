-- The CHECK constraints of the three tables written a row per member change now compare with
-- `=` … `OR` instead of `IN (…)`. SQLite evaluates a CHECK `IN` list of three or more
-- constants through a temporary index built for every row checked: on a million-row insert
-- that was 0.9 s per table, more than the table's own B-tree work (BENCHMARKS.md, issue 3).
-- The rules themselves are unchanged.
--
-- SQLite cannot alter a CHECK constraint, so each table is rebuilt as its manual says
-- (https://sqlite.org/lang_altertable.html#otheralter), like 0004. None of the three is the
-- target of a foreign key; planned_changes keeps its own key to runs.

CREATE TABLE audit_events_rebuilt (
    id              INTEGER PRIMARY KEY,
    teamspace_id    INTEGER NOT NULL,            -- teamspaces.id
    run_id          INTEGER NOT NULL,            -- runs.id
    source_id       INTEGER NOT NULL,            -- sources.id
    action          TEXT    NOT NULL CHECK (action = 'added' OR action = 'removed' OR action = 'updated'),
    oid             BLOB    NOT NULL,
    email           TEXT    NOT NULL,
    display_name    TEXT,
    role            TEXT    NOT NULL,
    previous_email  TEXT,
    previous_display_name TEXT,
    occurred_at     INTEGER NOT NULL
);
INSERT INTO audit_events_rebuilt SELECT id, teamspace_id, run_id, source_id, action, oid, email, display_name,
    role, previous_email, previous_display_name, occurred_at FROM audit_events;
DROP TABLE audit_events;
ALTER TABLE audit_events_rebuilt RENAME TO audit_events;

CREATE TABLE outbox_rebuilt (
    teamspace_id    INTEGER NOT NULL,
    event_id        INTEGER NOT NULL,            -- audit_events.id
    status          TEXT    NOT NULL DEFAULT 'pending'
                            CHECK (status = 'pending' OR status = 'delivered' OR status = 'dead'),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    delivered_at    INTEGER,
    PRIMARY KEY (teamspace_id, event_id)
) WITHOUT ROWID;
INSERT INTO outbox_rebuilt SELECT teamspace_id, event_id, status, attempts, next_attempt_at, last_error,
    delivered_at FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_rebuilt RENAME TO outbox;
CREATE INDEX outbox_pending ON outbox (teamspace_id, event_id) WHERE status = 'pending';

CREATE TABLE planned_changes_rebuilt (
    run_id          INTEGER NOT NULL REFERENCES runs (id),
    seq             INTEGER NOT NULL,
    oid             BLOB    NOT NULL,
    claim           TEXT    NOT NULL CHECK (claim = 'gain' OR claim = 'keep' OR claim = 'drop'),
    member          TEXT    NOT NULL
                            CHECK (member = 'add' OR member = 'remove' OR member = 'update' OR member = 'unchanged'),
    email           TEXT    NOT NULL,
    display_name    TEXT,
    previous_email  TEXT,
    previous_display_name TEXT,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
INSERT INTO planned_changes_rebuilt SELECT run_id, seq, oid, claim, member, email, display_name, previous_email,
    previous_display_name FROM planned_changes;
DROP TABLE planned_changes;
ALTER TABLE planned_changes_rebuilt RENAME TO planned_changes;
