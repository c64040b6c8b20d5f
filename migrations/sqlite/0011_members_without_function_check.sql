-- The members table no longer checks `length(oid) = 16` on every row it writes. A CHECK that
-- calls a function lets SQLite abort a multi-row INSERT part-way, so each such statement kept
-- a statement journal: a copy of every page it was about to change, 3% of a million-member
-- import (BENCHMARKS.md, issue 14). An oid is 16 bytes by its type (domain::Oid) on the one
-- write path, and Store::check_integrity still counts any row that is not.
--
-- SQLite cannot drop a CHECK constraint, so the table is rebuilt as its manual says
-- (https://sqlite.org/lang_altertable.html#otheralter), like 0004 and 0005. Nothing refers to
-- members by a foreign key, and it has no index besides its primary key.

CREATE TABLE members_rebuilt (
    teamspace_id    INTEGER NOT NULL,            -- teamspaces.id
    oid             BLOB    NOT NULL,            -- 16 bytes (Store::check_integrity)
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
INSERT INTO members_rebuilt SELECT teamspace_id, oid, email, display_name, email_hash, name_hash, role,
    attrs_source_id, created_at, updated_at FROM members;
DROP TABLE members;
ALTER TABLE members_rebuilt RENAME TO members;
