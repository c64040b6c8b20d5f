-- Scheduled ticks claimed by a replica (issue 17): every `serve` sharing the database computes
-- the same tick times from a source's schedule, and the one whose insert lands runs that tick;
-- the others skip it. Keyed by names, not row ids, because a source's first run creates its
-- row. Rows older than a week are deleted as new ones are claimed.
CREATE TABLE schedule_ticks (
    teamspace   TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    tick_at     INTEGER NOT NULL,
    claimed_by  TEXT    NOT NULL,
    claimed_at  INTEGER NOT NULL,
    PRIMARY KEY (teamspace, source, tick_at)
) WITHOUT ROWID;
