-- On SQLite this migration rewrote three CHECK constraints from `IN (…)` to `=` … `OR`, which
-- SQLite evaluates without a temporary index per row. PostgreSQL evaluates `IN` lists directly,
-- so its constraints stay as 0001 wrote them; the migration exists so that both engines carry
-- the same list of migrations.
SELECT 1;
