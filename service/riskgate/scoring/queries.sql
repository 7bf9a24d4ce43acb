-- name: load_rule_versions
SELECT version, weights, review_threshold, hold_threshold, status
FROM rule_versions
WHERE status IN ('active', 'shadow')
ORDER BY version;

-- name: record_decision
-- One statement, so one round trip and one implicit transaction: the idempotency claim, the
-- event with its decision, shadow decisions, the outbox row and the audit row commit together
-- or not at all. Everything after `claim` only runs when this request won the key.
WITH claim AS (
    SELECT claim_idempotency_key($1, $2, $3, $4, $5, $6, $7) AS won
), event AS (
    INSERT INTO events (id, client_id, event_id, source, signals, score, action, score_version,
                        reasons, trace_id, created_at)
    SELECT $8, $1, $9, $10, $11, $12, $13, $14, $15, $16, $17
    FROM claim WHERE won
    RETURNING id
), shadow AS (
    INSERT INTO shadow_decisions (event_ref, score_version, score, action, reasons)
    SELECT event.id, s.score_version, s.score, s.action, s.reasons
    FROM event, jsonb_to_recordset($18::jsonb)
        AS s (score_version text, score numeric, action text, reasons jsonb)
), outbox AS (
    INSERT INTO outbox (event_type, client_id, aggregate_id, payload, traceparent)
    SELECT 'decision.created', $1, event.id, $19, $20 FROM event
), audit AS (
    INSERT INTO audit_log (client_id, actor, action, entity_type, entity_id, details)
    SELECT $1, $21, 'decision.created', 'event', event.id::text, $22 FROM event
)
SELECT won FROM claim;

-- name: list_rule_versions
SELECT version, weights, review_threshold, hold_threshold, status, created_at
FROM rule_versions
ORDER BY created_at, version;

-- name: lock_rule_versions
-- Every version, locked: activation and retirement decide on what they read, so two operators
-- changing rules at once take turns instead of both reading the old active version.
SELECT version, status FROM rule_versions ORDER BY version FOR UPDATE;

-- name: create_rule_version
WITH created AS (
    INSERT INTO rule_versions (version, weights, review_threshold, hold_threshold, status)
    VALUES ($1, $2, $3, $4, 'shadow')
    ON CONFLICT (version) DO NOTHING
    RETURNING version
), audit AS (
    INSERT INTO audit_log (client_id, actor, action, entity_type, entity_id, details)
    SELECT NULL, $5, 'rule_version.created', 'rule_version', created.version,
           jsonb_build_object('weights', $2::jsonb, 'review_threshold', $3::numeric,
                              'hold_threshold', $4::numeric, 'status', 'shadow')
    FROM created
)
SELECT count(*) = 1 FROM created;

-- name: set_rule_status
WITH changed AS (
    UPDATE rule_versions SET status = $2 WHERE version = $1 AND status <> $2
    RETURNING version
)
INSERT INTO audit_log (client_id, actor, action, entity_type, entity_id, details)
SELECT NULL, $3, 'rule_version.' || $4, 'rule_version', changed.version,
       jsonb_build_object('status', $2::text)
FROM changed;
