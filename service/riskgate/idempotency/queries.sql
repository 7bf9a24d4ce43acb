-- name: fetch_record
SELECT fingerprint, response_status, response_headers, response_body
FROM idempotency_keys
WHERE client_id = $1 AND key = $2 AND expires_at > now();

-- name: purge_expired
-- Batched so a large backlog never holds many locks or one long transaction.
WITH doomed AS (
    SELECT client_id, key FROM idempotency_keys
    WHERE expires_at <= now()
    ORDER BY expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
DELETE FROM idempotency_keys k USING doomed
WHERE k.client_id = doomed.client_id AND k.key = doomed.key;
