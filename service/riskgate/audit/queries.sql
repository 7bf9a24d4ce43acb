-- name: chain
-- Each row with its digest recomputed by the same function the insert trigger used.
SELECT seq, prev_hash, hash,
       audit_entry_hash(prev_hash, seq, occurred_at, client_id, actor, action, entity_type,
                        entity_id, details) AS recomputed
FROM audit_log
ORDER BY seq;

-- name: head
SELECT last_seq, last_hash FROM audit_chain_head;
