-- One row that `serve` writes at start and `/readyz` rewrites while writes are failing: the
-- cheapest write that proves the database takes writes.
CREATE TABLE write_probe (
    id         BIGINT  PRIMARY KEY CHECK (id = 1),
    written_at BIGINT  NOT NULL
);
