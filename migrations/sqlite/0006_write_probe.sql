-- One row that `serve` writes at start and `/readyz` rewrites while writes are failing: the
-- cheapest write that proves the database file takes writes (not read-only, not full).
CREATE TABLE write_probe (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    written_at INTEGER NOT NULL
);
