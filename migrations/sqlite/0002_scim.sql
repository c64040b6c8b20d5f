-- SCIM 2.0 (issue 5): bearer tokens per teamspace, and the User and Group resources Entra
-- provisions, stored whole. A resource is not a member: the reconcile core turns an active
-- user with a usable object id into a `scim` claim, in the same transaction.

CREATE TABLE scim_tokens (
    id            INTEGER PRIMARY KEY,
    teamspace_id  INTEGER NOT NULL REFERENCES teamspaces(id),
    label         TEXT    NOT NULL,
    -- SHA-256 of the token's secret part; the token itself is shown once and never stored.
    secret_hash   BLOB    NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);

CREATE TABLE scim_users (
    teamspace_id   INTEGER NOT NULL REFERENCES teamspaces(id),
    id             TEXT    NOT NULL,
    -- Creation order: list responses page over it.
    seq            INTEGER NOT NULL,
    user_name      TEXT    NOT NULL,
    -- userName is case-insensitive (RFC 7643 caseExact=false): unique and filtered lower-cased.
    user_name_key  TEXT    NOT NULL,
    external_id    TEXT,
    display_name   TEXT,
    active         INTEGER NOT NULL,
    -- The member this resource stands for, when its oid attribute is a GUID.
    oid            BLOB,
    -- Why it is not a member although active (missing or bad oid attribute, no address).
    member_problem TEXT,
    -- The resource JSON as provisioned, without id and meta.
    resource       TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (teamspace_id, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX scim_users_by_user_name ON scim_users (teamspace_id, user_name_key);
-- NULLs never collide in a UNIQUE index, so users without an externalId are fine.
CREATE UNIQUE INDEX scim_users_by_external_id ON scim_users (teamspace_id, external_id);
CREATE INDEX scim_users_by_seq ON scim_users (teamspace_id, seq);
CREATE INDEX scim_users_by_oid ON scim_users (teamspace_id, oid);

CREATE TABLE scim_groups (
    teamspace_id      INTEGER NOT NULL REFERENCES teamspaces(id),
    id                TEXT    NOT NULL,
    seq               INTEGER NOT NULL,
    display_name      TEXT    NOT NULL,
    display_name_key  TEXT    NOT NULL,
    external_id       TEXT,
    resource          TEXT    NOT NULL,
    version           INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    PRIMARY KEY (teamspace_id, id)
) WITHOUT ROWID;
CREATE INDEX scim_groups_by_display_name ON scim_groups (teamspace_id, display_name_key);
CREATE INDEX scim_groups_by_seq ON scim_groups (teamspace_id, seq);

-- members[].value of each group, for filters and for the `groups` option of a scim source.
CREATE TABLE scim_group_members (
    teamspace_id  INTEGER NOT NULL,
    group_id      TEXT    NOT NULL,
    member_id     TEXT    NOT NULL,
    PRIMARY KEY (teamspace_id, group_id, member_id)
) WITHOUT ROWID;
CREATE INDEX scim_group_members_by_member ON scim_group_members (teamspace_id, member_id);
