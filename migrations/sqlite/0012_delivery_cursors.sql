-- Delivery state is written when delivery tries an event, no longer by the run that made it
-- (src/store/events.rs). An event at or past its teamspace's cursor has not been tried yet and
-- has no outbox row; each batch the worker sends gets its outbox rows and moves the cursor
-- past it. A run used to write a pending outbox row per event, and that row's index entry: a
-- sixth of a million-member import's work (BENCHMARKS.md, issue 14).
--
-- Every event so far has its outbox row, so each teamspace's cursor starts past its last one.
-- The untried events of a teamspace are found, in order, on its index of audit events.

CREATE TABLE delivery_cursors (
    teamspace_id    INTEGER PRIMARY KEY,         -- teamspaces.id
    -- The first event id delivery has not tried; every event of the teamspace before it has
    -- its outbox row.
    next_event_id   INTEGER NOT NULL
);
INSERT INTO delivery_cursors (teamspace_id, next_event_id)
    SELECT teamspace_id, max(event_id) + 1 FROM outbox GROUP BY teamspace_id;

CREATE INDEX audit_events_by_teamspace ON audit_events (teamspace_id, id);
