-- A running run's heartbeat (issue 17): its process renews it while the run goes on, so a
-- replica on another host, which cannot look the owner up in /proc, can still tell a live
-- run from an abandoned one: a heartbeat older than the run lease means its process is gone.
-- NULL for runs that finished before this migration, or never ran long enough to beat.
ALTER TABLE runs ADD COLUMN heartbeat_at INTEGER;
