-- name: get_event
SELECT e.id, e.event_id, e.source, e.signals, e.score, e.action, e.score_version, e.reasons,
       e.trace_id, e.created_at,
       coalesce((SELECT jsonb_agg(jsonb_build_object(
                    'score', s.score, 'action', s.action, 'score_version', s.score_version,
                    'reasons', s.reasons) ORDER BY s.score_version)
                 FROM shadow_decisions s WHERE s.event_ref = e.id), '[]') AS shadow_decisions,
       coalesce((SELECT jsonb_agg(jsonb_build_object(
                    'chain', a.chain, 'seq', a.seq, 'occurred_at', a.occurred_at,
                    'actor', a.actor, 'action', a.action, 'details', a.details,
                    'hash', encode(a.hash, 'hex'))
                    ORDER BY a.id)
                 FROM audit_log a
                 WHERE a.entity_type = 'event' AND a.entity_id = e.id::text), '[]') AS audit_trail
FROM events e
WHERE e.id = $1 AND e.client_id = $2;

-- name: list_events
-- Keyset pagination on the UUIDv7 id (newest first); one more row than asked tells whether
-- another page exists.
SELECT id, event_id, source, score, action, score_version, trace_id, created_at
FROM events
WHERE client_id = $1
  AND ($2::text IS NULL OR action = $2)
  AND ($3::text IS NULL OR source = $3)
  AND ($4::timestamptz IS NULL OR created_at >= $4)
  AND ($5::timestamptz IS NULL OR created_at < $5)
  AND ($6::text IS NULL OR event_id = $6)
  AND ($7::uuid IS NULL OR id < $7)
ORDER BY id DESC
LIMIT $8;
