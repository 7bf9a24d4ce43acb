-- Attempts lost with their worker. A worker killed mid-delivery leaves its claim to run out;
-- the worker that claims the delivery next records the lost attempt (the receiver may well
-- have got it), so "every attempt is kept" holds for those too. Its duration is unknown.
ALTER TABLE webhook_deliveries ADD COLUMN claimed_at timestamptz;

ALTER TABLE webhook_attempts DROP CONSTRAINT webhook_attempts_outcome_check;
ALTER TABLE webhook_attempts ADD CONSTRAINT webhook_attempts_outcome_check
    CHECK (outcome IN ('succeeded', 'retrying', 'failed', 'exhausted', 'worker_lost'));
ALTER TABLE webhook_attempts ALTER COLUMN duration_ms DROP NOT NULL;
