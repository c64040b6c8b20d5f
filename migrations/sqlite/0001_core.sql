-- c7sync core schema: teamspaces, sources, members, claims, runs, audit, outbox.
-- Times are Unix milliseconds (UTC). Object ids are 16-byte big-endian BLOBs, so index order
-- is GUID order and bulk adds sorted by oid append to the B-trees instead of splitting pages.

CREATE TABLE teamspaces (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL UNIQUE,
    tenant_id       TEXT    NOT NULL,
    audience        TEXT    NOT NULL,
    required_scope  TEXT    NOT NULL,
    max_removals    TEXT    NOT NULL,
    -- Bumped by every applied run: a cheap "has anything changed" marker.
    version         INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE TABLE sources (
    id              INTEGER PRIMARY KEY,
    teamspace_id    INTEGER NOT NULL REFERENCES teamspaces (id),
    kind            TEXT    NOT NULL CHECK (kind IN ('manual', 'scim', 'graph', 'csv')),
    name            TEXT    NOT NULL,            -- the id part of kind:id; '' for manual and scim
    -- Bumped whenever this source's claims change; `runs approve` requires it unchanged.
    version         INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    UNIQUE (teamspace_id, kind, name)
);

CREATE TABLE members (
    teamspace_id    INTEGER NOT NULL REFERENCES teamspaces (id),
    oid             BLOB    NOT NULL CHECK (length(oid) = 16),
    email           TEXT    NOT NULL,
    display_name    TEXT,
    role            TEXT    NOT NULL DEFAULT 'developer',
    -- The source whose email and name these are (attribute precedence, see plan/mod.rs).
    attrs_source_id INTEGER NOT NULL REFERENCES sources (id),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (teamspace_id, oid)
) WITHOUT ROWID;

-- "Source S says oid X belongs in teamspace T". A member exists exactly while it has a claim.
CREATE TABLE claims (
    teamspace_id    INTEGER NOT NULL,
    oid             BLOB    NOT NULL,
    source_id       INTEGER NOT NULL REFERENCES sources (id),
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (teamspace_id, oid, source_id),
    FOREIGN KEY (teamspace_id, oid) REFERENCES members (teamspace_id, oid)
) WITHOUT ROWID;

CREATE TABLE runs (
    id              INTEGER PRIMARY KEY,
    teamspace_id    INTEGER NOT NULL REFERENCES teamspaces (id),
    source_id       INTEGER NOT NULL REFERENCES sources (id),
    trigger         TEXT    NOT NULL,            -- import, sync, schedule, manual, scim, approve
    input           TEXT    NOT NULL CHECK (input IN ('snapshot', 'deltas')),
    outcome         TEXT    NOT NULL CHECK (outcome IN ('applied', 'dry_run', 'aborted', 'failed')),
    started_at      INTEGER NOT NULL,
    finished_at     INTEGER NOT NULL,
    added           INTEGER NOT NULL DEFAULT 0,
    removed         INTEGER NOT NULL DEFAULT 0,
    updated         INTEGER NOT NULL DEFAULT 0,
    unchanged       INTEGER NOT NULL DEFAULT 0,
    reason          TEXT,
    -- The source version the plan was made against (held plans are approved only if unchanged).
    source_version  INTEGER NOT NULL,
    approves_run_id INTEGER REFERENCES runs (id),
    approved_by_run_id INTEGER REFERENCES runs (id),
    -- Free-form JSON from the source: file name, rows read, invalid rows, skipped rows.
    details         TEXT
);
CREATE INDEX runs_by_teamspace ON runs (teamspace_id, id);

-- The plan of a dry run or of a run a guard held back, kept for `runs show` and `runs approve`.
CREATE TABLE planned_changes (
    run_id          INTEGER NOT NULL REFERENCES runs (id),
    seq             INTEGER NOT NULL,
    oid             BLOB    NOT NULL,
    claim           TEXT    NOT NULL CHECK (claim IN ('gain', 'keep', 'drop')),
    member          TEXT    NOT NULL CHECK (member IN ('add', 'remove', 'update', 'unchanged')),
    email           TEXT    NOT NULL,
    display_name    TEXT,
    previous_email  TEXT,
    previous_display_name TEXT,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

-- One row per member change. Never deleted by normal operation.
CREATE TABLE audit_events (
    id              INTEGER PRIMARY KEY,
    teamspace_id    INTEGER NOT NULL REFERENCES teamspaces (id),
    run_id          INTEGER NOT NULL REFERENCES runs (id),
    source_id       INTEGER NOT NULL REFERENCES sources (id),
    action          TEXT    NOT NULL CHECK (action IN ('added', 'removed', 'updated')),
    oid             BLOB    NOT NULL,
    email           TEXT    NOT NULL,
    display_name    TEXT,
    role            TEXT    NOT NULL,
    previous_email  TEXT,
    previous_display_name TEXT,
    occurred_at     INTEGER NOT NULL
);
CREATE INDEX audit_by_run ON audit_events (run_id);

-- Delivery state of each member event; the event itself is its audit row (same id), so the
-- payload is written once and the outbox row stays small.
CREATE TABLE outbox (
    event_id        INTEGER PRIMARY KEY REFERENCES audit_events (id),
    teamspace_id    INTEGER NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    delivered_at    INTEGER
);
CREATE INDEX outbox_pending ON outbox (teamspace_id, event_id) WHERE status = 'pending';
