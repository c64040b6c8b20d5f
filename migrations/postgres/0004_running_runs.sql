-- Runs recorded as `running` when they start, with the process that owns them (as on SQLite,
-- where the table had to be rebuilt; PostgreSQL alters it in place).
ALTER TABLE runs DROP CONSTRAINT runs_outcome;
ALTER TABLE runs ADD CONSTRAINT runs_outcome
    CHECK (outcome IN ('running', 'applied', 'dry_run', 'aborted', 'failed'));
ALTER TABLE runs ALTER COLUMN finished_at DROP NOT NULL;
ALTER TABLE runs ADD CONSTRAINT runs_finished CHECK ((finished_at IS NULL) = (outcome = 'running'));
ALTER TABLE runs ADD COLUMN owner TEXT;
CREATE INDEX runs_running ON runs (id) WHERE outcome = 'running';
