-- What a graph source in delta mode keeps between ticks (issue 18): Graph's delta links and
-- the membership graph they update. `links` is JSON, small and rewritten every tick;
-- `revision` moves with every write, so a replica can tell whether the copy it holds in
-- memory is still current.
CREATE TABLE graph_delta_state (
    source_id   BIGINT PRIMARY KEY REFERENCES sources (id),
    revision    BIGINT  NOT NULL,
    -- When the last full listing finished: the periodic full reconcile counts from here.
    full_at     BIGINT  NOT NULL,
    links       TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL
);

-- The membership graph in two parts, `edges` (group → direct members) and `users` (the
-- attributes c7sync reads), encodings owned by src/source/graph/delta. Each is a row of its
-- own, rewritten only when it changed: a database writes a row's value whole, and 100,000
-- users are megabytes that a quiet tick must not rewrite.
CREATE TABLE graph_delta_parts (
    source_id   BIGINT  NOT NULL REFERENCES graph_delta_state (source_id),
    part        TEXT    NOT NULL CHECK (part = 'edges' OR part = 'users'),
    data        BYTEA   NOT NULL,
    PRIMARY KEY (source_id, part)
);
