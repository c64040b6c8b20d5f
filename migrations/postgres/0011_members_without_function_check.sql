-- On SQLite this migration dropped the members table's CHECK on the oid's length: there a
-- CHECK that calls a function makes every multi-row INSERT keep a statement journal.
-- PostgreSQL has no such cost, so its `octet_length(oid) = 16` stays; the migration exists so
-- that both engines carry the same list of migrations.
SELECT 1;
