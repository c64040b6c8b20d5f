-- Which process delivers each teamspace's events (issue 17): one at a time, so that replicas
-- sharing the database never send an event twice while they are healthy, and in order. The
-- holder renews its lease with every batch; another process takes over once the lease has
-- expired, or at once when the holder is a process on this host that has ended.
CREATE TABLE delivery_leases (
    teamspace_id  BIGINT  PRIMARY KEY,
    holder        TEXT    NOT NULL,
    expires_at    BIGINT  NOT NULL
);
