-- name: chain
-- Every entry, chain by chain in chain order, with its digest recomputed by the same function
-- the insert trigger used.
SELECT chain, seq, prev_hash, hash,
       audit_entry_hash(prev_hash, chain, seq, occurred_at, client_id, actor, action,
                        entity_type, entity_id, details) AS recomputed
FROM audit_log
ORDER BY chain, seq;

-- name: heads
SELECT chain, last_seq, last_hash FROM audit_chain_head ORDER BY chain;
