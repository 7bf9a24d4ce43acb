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
