-- What a graph source in delta mode keeps between ticks (issue 18): Graph's delta links and
-- the membership graph they update. `links` is JSON (small, rewritten every tick); `edges`
-- (group → direct members) and `users` (the attributes c7sync reads) are opaque encodings
-- owned by src/source/graph/delta, each rewritten only when it changed. `revision` moves with
-- every write, so a replica can tell whether the copy it holds in memory is still current.
CREATE TABLE graph_delta_state (
    source_id   BIGINT PRIMARY KEY REFERENCES sources (id),
    revision    BIGINT  NOT NULL,
    -- When the last full listing finished: the periodic full reconcile counts from here.
    full_at     BIGINT  NOT NULL,
    links       TEXT    NOT NULL,
    edges       BYTEA   NOT NULL,
    users       BYTEA   NOT NULL,
    updated_at  BIGINT  NOT NULL
);
