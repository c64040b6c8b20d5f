-- Webhook delivery: each teamspace's pending events from the head, in order (as on SQLite).
CREATE INDEX outbox_pending ON outbox (teamspace_id, event_id) WHERE status = 'pending';
