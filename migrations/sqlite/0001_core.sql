-- c7sync core schema: teamspaces, sources, members, claims, runs, audit, outbox.
-- Times are Unix milliseconds (UTC). Object ids are 16-byte big-endian BLOBs, so index order
-- is GUID order and bulk adds sorted by oid append to the B-trees instead of splitting pages.
--
-- The four high-volume tables (members, claims, audit_events, outbox) declare no FOREIGN KEY
-- clauses: each clause costs a B-tree lookup per row, measured at ~40% of a million-row
-- import. Their references are written by one code path (store::apply) inside one
-- transaction, from ids read in that transaction, and Store::check_integrity verifies them.
-- The low-volume tables keep their foreign keys (PRAGMA foreign_keys is on).

CREATE TABLE teamspaces (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL UNIQUE,
    tenant_id       TEXT    NOT NULL,
    audience        TEXT    NOT NULL,
    required_scope  TEXT    NOT NULL,
    max_removals    TEXT    NOT NULL,
    -- Bumped by every applied run that changes something: "has anything changed since".
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
    -- Digest of the last snapshot this source applied, and the teamspace version right after.
    -- The same snapshot against the same version plans to nothing (the planner is idempotent),
    -- so such a run skips loading the teamspace.
    snapshot_digest  BLOB,
    snapshot_version INTEGER,
    created_at      INTEGER NOT NULL,
    UNIQUE (teamspace_id, kind, name)
);

CREATE TABLE members (
    teamspace_id    INTEGER NOT NULL,            -- teamspaces.id
    oid             BLOB    NOT NULL CHECK (length(oid) = 16),
    email           TEXT    NOT NULL,
    display_name    TEXT,
    -- 64-bit fingerprints of lower(email) and display_name (xxh3, see domain::fingerprint):
    -- planning compares these instead of loading every member's text.
    email_hash      INTEGER NOT NULL,
    name_hash       INTEGER,
    role            TEXT    NOT NULL DEFAULT 'developer',
    -- The source whose email and name these are (attribute precedence, see plan/mod.rs).
    attrs_source_id INTEGER NOT NULL,            -- sources.id
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (teamspace_id, oid)
) WITHOUT ROWID;

-- "Source S says oid X belongs in teamspace T". A member exists exactly while it has a claim.
CREATE TABLE claims (
    teamspace_id    INTEGER NOT NULL,            -- with oid: members (teamspace_id, oid)
    oid             BLOB    NOT NULL,
    source_id       INTEGER NOT NULL,            -- sources.id
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (teamspace_id, oid, source_id)
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
    -- The audit events an applied run wrote are exactly the ids first..last (assigned under
    -- the write lock), so finding them needs no index on audit_events.run_id.
    first_event_id  INTEGER,
    last_event_id   INTEGER,
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
    teamspace_id    INTEGER NOT NULL,            -- teamspaces.id
    run_id          INTEGER NOT NULL,            -- runs.id
    source_id       INTEGER NOT NULL,            -- sources.id
    action          TEXT    NOT NULL CHECK (action IN ('added', 'removed', 'updated')),
    oid             BLOB    NOT NULL,
    email           TEXT    NOT NULL,
    display_name    TEXT,
    role            TEXT    NOT NULL,
    previous_email  TEXT,
    previous_display_name TEXT,
    occurred_at     INTEGER NOT NULL
);

-- Delivery state of each member event; the event itself is its audit row (same id), so the
-- payload is written once and the outbox row stays small. Keyed in delivery order (in order
-- per teamspace), so the pending events of a teamspace are a range scan with no extra index.
CREATE TABLE outbox (
    teamspace_id    INTEGER NOT NULL,
    event_id        INTEGER NOT NULL,            -- audit_events.id
    status          TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    delivered_at    INTEGER,
    PRIMARY KEY (teamspace_id, event_id)
) WITHOUT ROWID;
