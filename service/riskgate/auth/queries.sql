-- name: create_client
-- The client, its first API key (unless $6 is null) and the audit row, in one statement.
-- $10 is the managed reference (NULL: made with the CLI), $11 the status.
WITH client AS (
    INSERT INTO clients (id, name, secret_hash, scopes, rate_limit, managed_ref, status)
    VALUES ($1, $2, $3, $4, $5, $10, $11)
    ON CONFLICT (name) DO NOTHING
    RETURNING id
), api_key AS (
    INSERT INTO api_keys (id, client_ref, key_hash, prefix)
    SELECT $6, client.id, $7, $8 FROM client WHERE $6::uuid IS NOT NULL
), audit AS (
    INSERT INTO audit_log (client_id, actor, action, entity_type, entity_id, details)
    SELECT client.id, $9, 'client.created', 'client', client.id::text,
           jsonb_build_object('name', $2::text, 'scopes', $4::text[], 'rate_limit', $5::text)
           || CASE WHEN $10::text IS NULL THEN '{}'::jsonb
                   ELSE jsonb_build_object('managed_ref', $10::text, 'status', $11::text) END
    FROM client
)
SELECT count(*) = 1 FROM client;

-- name: client_by_name
-- The previous secret only while its overlap lasts, judged by the database's clock.
SELECT id, name, secret_hash, scopes, status, rate_limit, managed_ref,
       CASE WHEN previous_secret_expires_at > now() THEN previous_secret_hash END
           AS previous_secret_hash
FROM clients WHERE name = $1;

-- name: client_by_id
SELECT id, name, secret_hash, scopes, status, rate_limit, managed_ref,
       NULL::text AS previous_secret_hash
FROM clients WHERE id = $1;

-- name: client_by_api_key
-- key_seconds_left bounds how long a cache may keep the answer for a key a rotation retires.
SELECT c.id, c.name, c.secret_hash, c.scopes, c.status, c.rate_limit, c.managed_ref,
       NULL::text AS previous_secret_hash,
       extract(epoch FROM k.expires_at - now())::float8 AS key_seconds_left
FROM api_keys k JOIN clients c ON c.id = k.client_ref
WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now());

-- name: list_clients
SELECT c.name, c.scopes, c.status, c.rate_limit, c.created_at,
       array_remove(array_agg(k.prefix ORDER BY k.created_at) FILTER (WHERE k.revoked_at IS NULL
           AND (k.expires_at IS NULL OR k.expires_at > now())), NULL) AS active_key_prefixes
FROM clients c LEFT JOIN api_keys k ON k.client_ref = c.id
WHERE c.status <> 'deleted'
GROUP BY c.id
ORDER BY c.name;

-- name: set_status
WITH changed AS (
    UPDATE clients SET status = $2, updated_at = now()
    WHERE name = $1 AND status <> $2 AND status <> 'deleted'
    RETURNING id
), audit AS (
    INSERT INTO audit_log (client_id, actor, action, entity_type, entity_id, details)
    SELECT changed.id, $3, 'client.' || $2, 'client', changed.id::text,
           jsonb_build_object('name', $1::text)
    FROM changed
)
SELECT (SELECT count(*) FROM changed) AS changed,
       EXISTS (SELECT FROM clients WHERE name = $1 AND status <> 'deleted') AS found;

-- name: rotate_credentials
-- New secret and one new API key. The current secret and keys keep working for $7 seconds
-- (0: they stop at once); those of an earlier rotation still in their overlap stop now, so at
-- most two generations work at any time. Returns NULL when there is no such client.
WITH client AS (
    UPDATE clients SET
        secret_hash = $2,
        previous_secret_hash = CASE WHEN $7::float8 > 0 THEN secret_hash END,
        previous_secret_expires_at = CASE WHEN $7::float8 > 0 THEN now() + make_interval(secs => $7::float8) END,
        updated_at = now()
    WHERE name = $1 AND status <> 'deleted'
    RETURNING id
), retired AS (
    UPDATE api_keys SET expires_at = CASE WHEN expires_at IS NULL
                                          THEN now() + make_interval(secs => $7::float8) ELSE now() END
    WHERE client_ref = (SELECT id FROM client) AND revoked_at IS NULL
      AND (expires_at IS NULL OR expires_at > now())
    RETURNING id
), api_key AS (
    INSERT INTO api_keys (id, client_ref, key_hash, prefix)
    SELECT $3, client.id, $4, $5 FROM client
), audit AS (
    INSERT INTO audit_log (client_id, actor, action, entity_type, entity_id, details)
    SELECT client.id, $6, 'client.credentials_rotated', 'client', client.id::text,
           jsonb_build_object('name', $1::text, 'retired_keys', (SELECT count(*) FROM retired),
                              'overlap_seconds', $7::float8)
    FROM client
)
SELECT now() + make_interval(secs => $7::float8) FROM client;

-- name: lock_for_rotation
-- The client locked until the caller's transaction ends, with whether $2 is the hash of its
-- current API key (the one no rotation has retired yet): a repeated rotation then changes nothing.
SELECT c.id, c.secret_hash,
       CASE WHEN c.previous_secret_expires_at > now() THEN c.previous_secret_expires_at END
           AS previous_expires_at,
       EXISTS (SELECT FROM api_keys k WHERE k.client_ref = c.id AND k.key_hash = $2
                                        AND k.revoked_at IS NULL AND k.expires_at IS NULL)
           AS key_is_current
FROM clients c
WHERE c.name = $1 AND c.status <> 'deleted'
FOR UPDATE OF c;

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

-- name: lock_managed_client
SELECT id, name, secret_hash, scopes, status, rate_limit, managed_ref,
       NULL::text AS previous_secret_hash
FROM clients WHERE managed_ref = $1
FOR UPDATE;

-- name: update_managed_client
-- The caller holds the row's lock (lock_managed_client), so this cannot race.
WITH changed AS (
    UPDATE clients SET scopes = $2, rate_limit = $3, status = $4, updated_at = now()
    WHERE managed_ref = $1
    RETURNING id, name
)
INSERT INTO audit_log (client_id, actor, action, entity_type, entity_id, details)
SELECT changed.id, $5, 'client.updated', 'client', changed.id::text,
       jsonb_build_object('name', changed.name, 'managed_ref', $1::text, 'changed', $6::text[],
                          'scopes', $2::text[], 'rate_limit', $3::text, 'status', $4::text)
FROM changed;

-- name: managed_client
SELECT c.name, c.managed_ref, c.scopes, c.status, c.rate_limit, c.created_at, c.updated_at,
       CASE WHEN c.previous_secret_expires_at > now() THEN c.previous_secret_expires_at END
           AS previous_credentials_expire_at,
       array_remove(array_agg(k.prefix ORDER BY k.created_at) FILTER (WHERE k.revoked_at IS NULL
           AND (k.expires_at IS NULL OR k.expires_at > now())), NULL) AS active_key_prefixes
FROM clients c LEFT JOIN api_keys k ON k.client_ref = c.id
WHERE c.managed_ref = $1
GROUP BY c.id;

-- name: delete_managed_client
-- A tombstone (the app cannot delete rows others refer to): renamed out of the way so the name
-- and the reference can be used again, no usable secret, every key revoked.
WITH gone AS (
    UPDATE clients SET
        name = 'deleted.' || id::text, managed_ref = NULL, status = 'deleted',
        secret_hash = 'deleted', previous_secret_hash = NULL, previous_secret_expires_at = NULL,
        updated_at = now()
    WHERE managed_ref = $1
    RETURNING id
), revoked AS (
    UPDATE api_keys SET revoked_at = now()
    WHERE client_ref = (SELECT id FROM gone) AND revoked_at IS NULL
)
, audit AS (
    INSERT INTO audit_log (client_id, actor, action, entity_type, entity_id, details)
    SELECT gone.id, $3, 'client.deleted', 'client', gone.id::text,
           jsonb_build_object('name', $2::text, 'managed_ref', $1::text)
    FROM gone
)
SELECT count(*) = 1 FROM gone;
