-- Retention: the webhook worker deletes finished deliveries (with their attempts) and dispatched
-- outbox rows no delivery refers to any more, oldest first, a small batch per statement.

-- The purge walks each class of finished delivery (succeeded; failed and exhausted, the dead
-- letters) in completion order, so it never scans the rows it must keep.
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (status, completed_at)
    WHERE status IN ('succeeded', 'failed', 'exhausted');
-- Whether an outbox row still has deliveries: asked by the purge, and by the foreign key on
-- every outbox delete (without it, each deleted row would scan the deliveries).
CREATE INDEX webhook_deliveries_outbox ON webhook_deliveries (outbox_id);
CREATE INDEX outbox_dispatched ON outbox (dispatched_at) WHERE dispatched_at IS NOT NULL;
