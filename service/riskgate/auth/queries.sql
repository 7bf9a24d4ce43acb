-- name: create_client
-- The client, its first API key (unless $6 is null) and the audit row, in one statement.
WITH client AS (
    INSERT INTO clients (id, name, secret_hash, scopes, rate_limit)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (name) DO NOTHING
    RETURNING id
), api_key AS (
    INSERT INTO api_keys (id, client_ref, key_hash, prefix)
    SELECT $6, client.id, $7, $8 FROM client WHERE $6::uuid IS NOT NULL
), audit AS (
    INSERT INTO audit_log (client_id, actor, action, entity_type, entity_id, details)
    SELECT client.id, $9, 'client.created', 'client', client.id::text,
           jsonb_build_object('name', $2::text, 'scopes', $4::text[], 'rate_limit', $5::text)
    FROM client
)
SELECT count(*) = 1 FROM client;

-- name: client_by_name
SELECT id, name, secret_hash, scopes, status, rate_limit FROM clients WHERE name = $1;

-- name: client_by_id
SELECT id, name, secret_hash, scopes, status, rate_limit FROM clients WHERE id = $1;

-- name: client_by_api_key
SELECT c.id, c.name, c.secret_hash, c.scopes, c.status, c.rate_limit
FROM api_keys k JOIN clients c ON c.id = k.client_ref
WHERE k.key_hash = $1 AND k.revoked_at IS NULL;

-- name: list_clients
SELECT c.name, c.scopes, c.status, c.rate_limit, c.created_at,
       array_remove(array_agg(k.prefix ORDER BY k.created_at) FILTER (WHERE k.revoked_at IS NULL), NULL)
           AS active_key_prefixes
FROM clients c LEFT JOIN api_keys k ON k.client_ref = c.id
GROUP BY c.id
ORDER BY c.name;

-- name: set_status
WITH changed AS (
    UPDATE clients SET status = $2, updated_at = now()
    WHERE name = $1 AND status <> $2
    RETURNING id
), audit AS (
    INSERT INTO audit_log (client_id, actor, action, entity_type, entity_id, details)
    SELECT changed.id, $3, 'client.' || $2, 'client', changed.id::text,
           jsonb_build_object('name', $1::text)
    FROM changed
)
SELECT (SELECT count(*) FROM changed) AS changed,
       EXISTS (SELECT FROM clients WHERE name = $1) AS found;

-- name: rotate_credentials
-- New secret, every old API key revoked, one new key: the old credentials stop working at once.
WITH client AS (
    UPDATE clients SET secret_hash = $2, updated_at = now()
    WHERE name = $1
    RETURNING id
), revoked AS (
    UPDATE api_keys SET revoked_at = now()
    WHERE client_ref = (SELECT id FROM client) AND revoked_at IS NULL
    RETURNING id
), api_key AS (
    INSERT INTO api_keys (id, client_ref, key_hash, prefix)
    SELECT $3, client.id, $4, $5 FROM client
), audit AS (
    INSERT INTO audit_log (client_id, actor, action, entity_type, entity_id, details)
    SELECT client.id, $6, 'client.credentials_rotated', 'client', client.id::text,
           jsonb_build_object('name', $1::text, 'revoked_keys', (SELECT count(*) FROM revoked))
    FROM client
)
SELECT count(*) = 1 FROM client;

-- name: update_client
-- Compare-and-set: it applies only while the row still holds what the caller read ($5-$7), so
-- of two concurrent `clients ensure` one writes and the other re-reads and finds it done.
WITH changed AS (
    UPDATE clients SET secret_hash = $2, scopes = $3, rate_limit = $4, updated_at = now()
    WHERE name = $1 AND secret_hash = $5 AND scopes @> $6 AND scopes <@ $6
      AND rate_limit IS NOT DISTINCT FROM $7
    RETURNING id
), audit AS (
    INSERT INTO audit_log (client_id, actor, action, entity_type, entity_id, details)
    SELECT changed.id, $8, 'client.updated', 'client', changed.id::text,
           jsonb_build_object('name', $1::text, 'changed', $9::text[], 'scopes', $3::text[],
                              'rate_limit', $4::text)
    FROM changed
)
SELECT count(*) = 1 FROM changed;
