-- Runs that read a source before planning (import, csv and Graph syncs) are recorded as
-- `running` when they start, with the process that owns them, and completed by the same
-- transaction that applies them. A process killed mid-run so leaves a visible run, which the
-- next c7sync process to start a run (or `serve` at start-up) marks `failed` once its owner
-- is gone. `finished_at` is empty while a run is running.
--
-- SQLite cannot alter a CHECK constraint or a NOT NULL, so the table is rebuilt as its manual
-- says (https://sqlite.org/lang_altertable.html#otheralter). That needs foreign keys off:
-- `Store::open` runs migrations on a connection without them, then checks every key.
CREATE TABLE runs_rebuilt (
    id              INTEGER PRIMARY KEY,
    teamspace_id    INTEGER NOT NULL REFERENCES teamspaces (id),
    source_id       INTEGER NOT NULL REFERENCES sources (id),
    trigger         TEXT    NOT NULL,            -- import, sync, schedule, manual, scim, approve
    input           TEXT    NOT NULL CHECK (input IN ('snapshot', 'deltas')),
    outcome         TEXT    NOT NULL CHECK (outcome IN ('running', 'applied', 'dry_run', 'aborted', 'failed')),
    started_at      INTEGER NOT NULL,
    finished_at     INTEGER CHECK ((finished_at IS NULL) = (outcome = 'running')),
    added           INTEGER NOT NULL DEFAULT 0,
    removed         INTEGER NOT NULL DEFAULT 0,
    updated         INTEGER NOT NULL DEFAULT 0,
    unchanged       INTEGER NOT NULL DEFAULT 0,
    reason          TEXT,
    source_version  INTEGER NOT NULL,
    approves_run_id INTEGER REFERENCES runs (id),
    approved_by_run_id INTEGER REFERENCES runs (id),
    first_event_id  INTEGER,
    last_event_id   INTEGER,
    details         TEXT,
    -- The process running it (see src/store/owner.rs), while it runs.
    owner           TEXT
);
INSERT INTO runs_rebuilt (id, teamspace_id, source_id, trigger, input, outcome, started_at, finished_at,
    added, removed, updated, unchanged, reason, source_version, approves_run_id, approved_by_run_id,
    first_event_id, last_event_id, details)
SELECT id, teamspace_id, source_id, trigger, input, outcome, started_at, finished_at,
    added, removed, updated, unchanged, reason, source_version, approves_run_id, approved_by_run_id,
    first_event_id, last_event_id, details FROM runs;
DROP TABLE runs;
ALTER TABLE runs_rebuilt RENAME TO runs;
CREATE INDEX runs_by_teamspace ON runs (teamspace_id, id);
CREATE INDEX runs_running ON runs (id) WHERE outcome = 'running';
