-- Webhook delivery (issue 6): the worker reads each teamspace's pending events from the head,
-- in order. Without this index, finding the head means stepping over every delivered event.
CREATE INDEX outbox_pending ON outbox (teamspace_id, event_id) WHERE status = 'pending';
