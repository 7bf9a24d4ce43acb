-- All SQL of the webhook domain. A subscription is visible to its owner and to the clients
-- whose events it receives; only its owner changes it, and only over the route that manages it.


-- name: create_subscription
-- The idempotency claim, the subscription, its sealed secret and the audit row in one statement.
WITH claim AS (
    SELECT claim_idempotency_key($1, $2, $3, $4, $5, $6, $7) AS won
), sub AS (
    -- created_at as the response shows it: that response is stored and replayed as it is.
    INSERT INTO webhook_subscriptions
        (id, owner_client_id, client_ids, url, event_types, actions, paused, created_at, updated_at)
    SELECT $8, $1, ARRAY[$1::uuid], $9, $10, $11, $12, $17, $17 FROM claim WHERE won
    RETURNING id
), secret AS (
    INSERT INTO webhook_secrets (subscription_id, key_id, sealed)
    SELECT sub.id, $13, $14 FROM sub
), audit AS (
    INSERT INTO audit_log (client_id, actor, action, entity_type, entity_id, details)
    SELECT $1, $15, 'webhook_subscription.created', 'webhook_subscription', sub.id::text, $16
    FROM sub
)
SELECT won FROM claim;

-- name: get_subscription
SELECT s.id, s.url, s.event_types, s.actions, s.paused, s.status, s.disabled_reason,
       s.failing_since, s.managed_by, s.managed_ref, s.created_at, s.updated_at,
       s.owner_client_id = $2 AS owned,
       ARRAY(SELECT c.name FROM clients c WHERE c.id = ANY (s.client_ids) ORDER BY c.name) AS clients,
       (SELECT max(ws.expires_at) FROM webhook_secrets ws
        WHERE ws.subscription_id = s.id AND ws.expires_at > now()) AS previous_secret_expires_at
FROM webhook_subscriptions s
WHERE s.id = $1 AND (s.owner_client_id = $2 OR s.client_ids @> ARRAY[$2::uuid]);

-- name: list_subscriptions
SELECT s.id, s.url, s.event_types, s.actions, s.paused, s.status, s.disabled_reason,
       s.failing_since, s.managed_by, s.managed_ref, s.created_at, s.updated_at,
       s.owner_client_id = $1 AS owned,
       ARRAY(SELECT c.name FROM clients c WHERE c.id = ANY (s.client_ids) ORDER BY c.name) AS clients,
       (SELECT max(ws.expires_at) FROM webhook_secrets ws
        WHERE ws.subscription_id = s.id AND ws.expires_at > now()) AS previous_secret_expires_at
FROM webhook_subscriptions s
WHERE (s.owner_client_id = $1 OR s.client_ids @> ARRAY[$1::uuid])
  AND ($2::uuid IS NULL OR s.id < $2)
ORDER BY s.id DESC
LIMIT $3;

-- name: update_subscription
-- NULL parameters leave a field alone ($5 says whether actions is being set, as NULL is a value).
WITH sub AS (
    UPDATE webhook_subscriptions s SET
        url = coalesce($3, s.url),
        event_types = coalesce($4, s.event_types),
        actions = CASE WHEN $5 THEN $6 ELSE s.actions END,
        paused = coalesce($7, s.paused),
        status = coalesce($8, s.status),
        disabled_reason = CASE
            WHEN $8 = 'active' THEN NULL
            WHEN $8 = 'disabled' AND s.status = 'active' THEN 'manual'
            ELSE s.disabled_reason END,
        disabled_at = CASE
            WHEN $8 = 'active' THEN NULL
            WHEN $8 = 'disabled' AND s.status = 'active' THEN now()
            ELSE s.disabled_at END,
        failing_since = CASE WHEN $8 = 'active' THEN NULL ELSE s.failing_since END,
        updated_at = now()
    WHERE s.id = $1 AND s.owner_client_id = $2 AND s.managed_by = $9
    RETURNING s.id
), audit AS (
    INSERT INTO audit_log (client_id, actor, action, entity_type, entity_id, details)
    SELECT $2, $10, 'webhook_subscription.updated', 'webhook_subscription', sub.id::text, $11
    FROM sub
)
SELECT count(*) = 1 FROM sub;

-- name: apply_queue_state
-- After pausing, resuming or disabling: park, release or fail the subscription's queued
-- deliveries (a delivery a worker holds right now is handled when it is next claimed).
WITH sub AS (
    SELECT id, paused, status FROM webhook_subscriptions WHERE id = $1
), changed AS (
    UPDATE webhook_deliveries d SET
        status = CASE WHEN sub.status = 'disabled' THEN 'failed'
                      WHEN sub.paused THEN 'held' ELSE 'pending' END,
        next_attempt_at = CASE WHEN sub.status = 'active' AND NOT sub.paused
                               THEN now() END,
        last_error_class = CASE WHEN sub.status = 'disabled' THEN 'subscription_disabled'
                                ELSE d.last_error_class END,
        completed_at = CASE WHEN sub.status = 'disabled' THEN now() END,
        locked_until = NULL,
        lock_token = NULL,
        claimed_at = NULL
    FROM sub
    WHERE d.subscription_id = sub.id
      AND d.event_type <> 'webhook.test'
      AND (d.locked_until IS NULL OR d.locked_until < now())
      AND ((sub.status = 'disabled' AND d.status IN ('pending', 'retrying', 'held'))
        OR (sub.status = 'active' AND sub.paused AND d.status IN ('pending', 'retrying'))
        OR (sub.status = 'active' AND NOT sub.paused AND d.status = 'held'))
    RETURNING d.id, d.status
), lost AS (
    -- A lease that ran out unrecorded (as in claim_deliveries): that attempt was lost.
    INSERT INTO webhook_attempts (delivery_id, attempt, started_at, outcome, error_class)
    SELECT d.id, d.attempt_count, coalesce(d.claimed_at, d.locked_until), 'worker_lost',
           'worker_lost'
    FROM webhook_deliveries d JOIN changed ON changed.id = d.id
    WHERE d.lock_token IS NOT NULL
    ON CONFLICT DO NOTHING
), notify AS (
    SELECT pg_notify('riskgate_deliveries', '')
    WHERE EXISTS (SELECT 1 FROM changed WHERE status = 'pending')
)
SELECT (SELECT count(*) FROM changed) AS changed, (SELECT count(*) FROM notify) AS notified;

-- name: delete_subscription
WITH sub AS (
    DELETE FROM webhook_subscriptions
    WHERE id = $1 AND owner_client_id = $2 AND managed_by = $3
    RETURNING id
), audit AS (
    INSERT INTO audit_log (client_id, actor, action, entity_type, entity_id, details)
    SELECT $2, $4, 'webhook_subscription.deleted', 'webhook_subscription', sub.id::text, '{}'
    FROM sub
)
SELECT count(*) = 1 FROM sub;

-- name: rotate_secret
-- The claim runs only when the subscription exists and the caller manages it over REST, so a
-- key is never spent on a rotation that did not happen. Every live secret expires after the
-- overlap ($10), the new one signs from now on.
WITH sub AS (
    SELECT id FROM webhook_subscriptions
    WHERE id = $8 AND owner_client_id = $1 AND managed_by = 'api'
    FOR UPDATE
), claim AS (
    SELECT claim_idempotency_key($1, $2, $3, $4, $5, $6, $7) AS won FROM sub
), expire AS (
    UPDATE webhook_secrets ws SET expires_at = least(coalesce(ws.expires_at, 'infinity'), $11)
    FROM claim
    WHERE claim.won AND ws.subscription_id = $8 AND (ws.expires_at IS NULL OR ws.expires_at > now())
), purge AS (
    DELETE FROM webhook_secrets ws USING claim
    WHERE claim.won AND ws.subscription_id = $8 AND ws.expires_at <= now()
), secret AS (
    INSERT INTO webhook_secrets (subscription_id, key_id, sealed)
    SELECT $8, $9, $10 FROM claim WHERE won
), audit AS (
    INSERT INTO audit_log (client_id, actor, action, entity_type, entity_id, details)
    SELECT $1, $12, 'webhook_subscription.secret_rotated', 'webhook_subscription', $8::text,
           jsonb_build_object('previous_secret_expires_at', $11::timestamptz)
    FROM claim WHERE won
)
SELECT won FROM claim;

-- name: lock_managed_subscription
SELECT id, owner_client_id, url FROM webhook_subscriptions WHERE managed_ref = $1 FOR UPDATE;

-- name: upsert_managed_subscription
INSERT INTO webhook_subscriptions
    (id, owner_client_id, client_ids, url, event_types, actions, paused, managed_by, managed_ref)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'kubernetes', $8)
ON CONFLICT (managed_ref) DO UPDATE SET
    client_ids = EXCLUDED.client_ids,
    url = EXCLUDED.url,
    event_types = EXCLUDED.event_types,
    actions = EXCLUDED.actions,
    paused = EXCLUDED.paused,
    -- A new URL is a new chance: a subscription disabled for its old URL comes back.
    status = CASE WHEN webhook_subscriptions.url <> EXCLUDED.url THEN 'active'
                  ELSE webhook_subscriptions.status END,
    disabled_reason = CASE WHEN webhook_subscriptions.url <> EXCLUDED.url THEN NULL
                           ELSE webhook_subscriptions.disabled_reason END,
    failing_since = CASE WHEN webhook_subscriptions.url <> EXCLUDED.url THEN NULL
                         ELSE webhook_subscriptions.failing_since END,
    updated_at = now()
WHERE webhook_subscriptions.owner_client_id = EXCLUDED.owner_client_id
RETURNING id;

-- name: replace_secrets
WITH gone AS (
    DELETE FROM webhook_secrets WHERE subscription_id = $1
)
INSERT INTO webhook_secrets (subscription_id, key_id, sealed, expires_at)
SELECT $1, s.key_id, s.sealed, s.expires_at
FROM unnest($2::text[], $3::bytea[], $4::timestamptz[]) AS s (key_id, sealed, expires_at);

-- name: audit_sync
INSERT INTO audit_log (client_id, actor, action, entity_type, entity_id, details)
VALUES ($1, $2, $3, 'webhook_subscription', $4::uuid::text, $5);

-- name: client_ids_by_name
SELECT name, id FROM clients WHERE name = ANY ($1::text[]);

-- name: delete_managed_subscription
WITH sub AS (
    DELETE FROM webhook_subscriptions WHERE managed_ref = $1 AND owner_client_id = $2
    RETURNING id
), audit AS (
    INSERT INTO audit_log (client_id, actor, action, entity_type, entity_id, details)
    SELECT $2, $3, 'webhook_subscription.deleted', 'webhook_subscription', sub.id::text,
           jsonb_build_object('managed_ref', $1::text)
    FROM sub
)
SELECT count(*) = 1 FROM sub;

-- name: managed_subscription_owner
SELECT owner_client_id FROM webhook_subscriptions WHERE managed_ref = $1;

-- name: managed_subscription_health
-- The operator's read of a managed subscription: its owner and how deliveries go. Each part
-- walks the (subscription_id, id DESC) index: the newest success, the attempts of the latest
-- deliveries in the last 24 h (at most 1000 attempts), and the exhausted deliveries.
SELECT s.id, s.owner_client_id, s.failing_since,
       (SELECT d.completed_at FROM webhook_deliveries d
        WHERE d.subscription_id = s.id AND d.status = 'succeeded'
        ORDER BY d.id DESC LIMIT 1) AS last_success_at,
       r.attempts AS recent_attempts, r.succeeded AS recent_succeeded,
       (SELECT count(*) FROM webhook_deliveries d
        WHERE d.subscription_id = s.id AND d.status = 'exhausted') AS dead_letters
FROM webhook_subscriptions s
CROSS JOIN LATERAL (
    SELECT count(*) AS attempts, count(*) FILTER (WHERE a.outcome = 'succeeded') AS succeeded
    FROM (SELECT wa.outcome FROM webhook_deliveries d
          JOIN webhook_attempts wa ON wa.delivery_id = d.id
          WHERE d.subscription_id = s.id AND d.created_at > now() - interval '24 hours'
            AND wa.started_at > now() - interval '24 hours'
          ORDER BY d.id DESC LIMIT 1000) a
) r
WHERE s.managed_ref = $1;

-- name: recover_deliveries
-- Tenant isolation: a client that only receives a subscription's events (Kubernetes-managed)
-- re-sends its own deliveries, never another client's.
WITH sub AS (
    SELECT id, paused, owner_client_id FROM webhook_subscriptions
    WHERE id = $1 AND status = 'active'
      AND (owner_client_id = $2 OR client_ids @> ARRAY[$2::uuid])
), requeued AS (
    UPDATE webhook_deliveries d SET
        status = CASE WHEN sub.paused THEN 'held' ELSE 'pending' END,
        next_attempt_at = CASE WHEN sub.paused THEN NULL ELSE now() END,
        cycle_attempts = 0,
        completed_at = NULL
    FROM sub
    WHERE d.subscription_id = sub.id
      AND d.status IN ('failed', 'exhausted')
      AND d.created_at >= $3 AND ($4::timestamptz IS NULL OR d.created_at < $4)
      AND (sub.owner_client_id = $2 OR d.client_id = $2)
    RETURNING 1
), notify AS (
    SELECT pg_notify('riskgate_deliveries', '') WHERE EXISTS (SELECT 1 FROM requeued)
)
SELECT (SELECT count(*) FROM requeued) AS requeued, (SELECT count(*) FROM notify) AS notified;

-- name: send_test
-- A test is an outbox row born dispatched (the dispatcher must not fan it out) and one
-- delivery to the chosen subscription or bare URL, with the idempotency claim.
WITH claim AS (
    SELECT claim_idempotency_key($1, $2, $3, $4, $5, $6, $7) AS won
), event AS (
    INSERT INTO outbox (event_type, client_id, aggregate_id, payload, traceparent, dispatched_at)
    SELECT 'webhook.test', $1, $9, $10, $11, now() FROM claim WHERE won
    RETURNING id, aggregate_id
), delivery AS (
    INSERT INTO webhook_deliveries (id, subscription_id, client_id, outbox_id, event_type,
                                    aggregate_id, status, next_attempt_at, target_url,
                                    target_key_id, target_secret)
    SELECT $8, $12, $1, event.id, 'webhook.test', event.aggregate_id, 'pending', now(),
           $13, $14, $15
    FROM event
    RETURNING id
), notify AS (
    SELECT pg_notify('riskgate_deliveries', '') WHERE EXISTS (SELECT 1 FROM delivery)
)
SELECT won, (SELECT count(*) FROM notify) AS notified FROM claim;

-- name: get_delivery
SELECT id, subscription_id, url, event_type, event_ref, status, attempts_made, next_attempt_at,
       last_status_code, last_error_class, created_at, completed_at, subscription_status, attempts
FROM webhook_delivery_log
WHERE id = $1 AND (client_id = $2 OR owner_client_id = $2);

-- name: list_deliveries
SELECT id, subscription_id, url, event_type, event_ref, status, attempts_made, next_attempt_at,
       last_status_code, last_error_class, created_at, completed_at, subscription_status, attempts
FROM webhook_delivery_log
WHERE (client_id = $1 OR owner_client_id = $1)
  AND ($2::uuid IS NULL OR subscription_id = $2)
  AND ($3::text IS NULL OR status = $3)
  AND ($4::text IS NULL OR event_type = $4)
  AND ($5::uuid IS NULL OR event_ref = $5)
  AND ($6::uuid IS NULL OR id < $6)
ORDER BY id DESC
LIMIT $7;

-- name: replay_delivery
-- Same message again (same webhook-id, so receivers can de-duplicate), a fresh retry cycle.
WITH target AS (
    SELECT d.id, coalesce(s.paused, false) AND d.event_type <> 'webhook.test' AS paused
    FROM webhook_deliveries d
    LEFT JOIN webhook_subscriptions s ON s.id = d.subscription_id
    WHERE d.id = $1 AND (d.client_id = $2 OR s.owner_client_id = $2)
      AND d.status IN ('succeeded', 'failed', 'exhausted')
    FOR UPDATE OF d
), replayed AS (
    UPDATE webhook_deliveries d SET
        status = CASE WHEN target.paused THEN 'held' ELSE 'pending' END,
        next_attempt_at = CASE WHEN target.paused THEN NULL ELSE now() END,
        cycle_attempts = 0,
        completed_at = NULL
    FROM target WHERE d.id = target.id
    RETURNING d.id
), notify AS (
    SELECT pg_notify('riskgate_deliveries', '') WHERE EXISTS (SELECT 1 FROM replayed)
)
SELECT (SELECT count(*) FROM replayed) = 1 AS replayed, (SELECT count(*) FROM notify) AS notified;

-- ============================================================================================
-- The worker
-- ============================================================================================

-- name: dispatch_outbox
-- Fan a batch of outbox rows out into one delivery per matching active subscription and mark
-- them dispatched, atomically: a worker killed midway leaves the rows undispatched for the next.
-- Tenant isolation: an event reaches only subscriptions that list its client.
WITH batch AS (
    SELECT id, event_type, client_id, aggregate_id, payload
    FROM outbox
    WHERE dispatched_at IS NULL
    ORDER BY id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), marked AS (
    UPDATE outbox o SET dispatched_at = now() FROM batch WHERE o.id = batch.id
    RETURNING o.id
), fanout AS (
    INSERT INTO webhook_deliveries (id, subscription_id, client_id, outbox_id, event_type,
                                    aggregate_id, status, next_attempt_at)
    SELECT webhook_uuid7(), s.id, b.client_id, b.id, b.event_type, b.aggregate_id,
           CASE WHEN s.paused THEN 'held' ELSE 'pending' END,
           CASE WHEN s.paused THEN NULL ELSE now() + make_interval(secs => $2) END
    FROM batch b
    JOIN webhook_subscriptions s
      ON s.status = 'active'
     AND b.event_type = ANY (s.event_types)
     AND s.client_ids @> ARRAY[b.client_id]
     AND (s.actions IS NULL OR b.event_type <> 'decision.created'
          OR (b.payload ->> 'action') = ANY (s.actions))
    ORDER BY b.id
    RETURNING 1
), notify AS (
    SELECT pg_notify('riskgate_deliveries', '') WHERE EXISTS (SELECT 1 FROM fanout)
)
SELECT (SELECT count(*) FROM marked) AS dispatched,
       (SELECT count(*) FROM fanout) AS deliveries,
       (SELECT count(*) FROM notify) AS notified;

-- name: claim_deliveries
-- Claim up to $1 due deliveries for $2 seconds (the lease): the row leaves the due set until
-- the lease ends, so a killed worker's claims come back by themselves, and no other worker
-- can take the same attempt meanwhile. A row still holding a lease token was claimed by a
-- worker that never recorded its attempt (killed, or stalled past its lease): that attempt is
-- recorded here as `worker_lost` (the receiver may have got it), numbered as it was claimed.
WITH due AS (
    SELECT id, lock_token IS NOT NULL AS reclaimed FROM webhook_deliveries
    WHERE status IN ('pending', 'retrying') AND next_attempt_at <= now()
    ORDER BY next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), lost AS (
    INSERT INTO webhook_attempts (delivery_id, attempt, started_at, outcome, error_class)
    SELECT d.id, d.attempt_count, coalesce(d.claimed_at, d.locked_until), 'worker_lost',
           'worker_lost'
    FROM webhook_deliveries d JOIN due ON due.id = d.id AND due.reclaimed
    ON CONFLICT DO NOTHING  -- the late worker recorded it after all
), claimed AS (
    UPDATE webhook_deliveries d SET
        locked_until = now() + make_interval(secs => $2),
        next_attempt_at = now() + make_interval(secs => $2),
        claimed_at = now(),
        lock_token = $3,
        attempt_count = d.attempt_count + 1,
        cycle_attempts = d.cycle_attempts + 1,
        last_error_class = CASE WHEN due.reclaimed THEN 'worker_lost' ELSE d.last_error_class END
    FROM due WHERE d.id = due.id
    RETURNING d.*, due.reclaimed
)
SELECT c.id, c.reclaimed, c.subscription_id, c.event_type, c.attempt_count, c.cycle_attempts,
       c.target_url, c.target_key_id, c.target_secret,
       o.payload::text AS payload, o.created_at AS event_created_at, o.traceparent,
       s.url, s.status AS subscription_status, coalesce(s.paused, false) AS paused,
       s.failing_since,
       ARRAY(SELECT ws.key_id FROM webhook_secrets ws
             WHERE ws.subscription_id = c.subscription_id
               AND (ws.expires_at IS NULL OR ws.expires_at > now())
             ORDER BY ws.created_at DESC, ws.id) AS secret_key_ids,
       ARRAY(SELECT ws.sealed FROM webhook_secrets ws
             WHERE ws.subscription_id = c.subscription_id
               AND (ws.expires_at IS NULL OR ws.expires_at > now())
             ORDER BY ws.created_at DESC, ws.id) AS secret_sealed
FROM claimed c
JOIN outbox o ON o.id = c.outbox_id
LEFT JOIN webhook_subscriptions s ON s.id = c.subscription_id;

-- name: finish_attempts
-- Record a batch of attempts. A delivery's row changes only while the recording worker still
-- holds its lease; the attempt itself is always recorded (it happened).
WITH r AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::text[], $5::float8[],
                         $6::timestamptz[], $7::int[], $8::int[], $9::text[], $10::text[])
        AS r (delivery_id, lock_token, attempt, outcome, retry_in, started_at, duration_ms,
              status_code, error_class, response_body)
), delivery AS (
    UPDATE webhook_deliveries d SET
        status = r.outcome,
        next_attempt_at = CASE WHEN r.outcome = 'retrying'
                               THEN now() + make_interval(secs => r.retry_in) END,
        locked_until = NULL,
        lock_token = NULL,
        claimed_at = NULL,
        last_attempt_at = r.started_at,
        last_status_code = r.status_code,
        last_error_class = r.error_class,
        completed_at = CASE WHEN r.outcome IN ('succeeded', 'failed', 'exhausted') THEN now() END
    FROM r
    WHERE d.id = r.delivery_id AND d.lock_token = r.lock_token
    RETURNING d.id
), attempt AS (
    INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms, outcome,
                                  status_code, error_class, response_body)
    SELECT r.delivery_id, r.attempt, r.started_at, r.duration_ms, r.outcome, r.status_code,
           r.error_class, r.response_body
    FROM r JOIN webhook_deliveries d ON d.id = r.delivery_id
    -- A worker that outlived its lease reports after another recorded its attempt as lost:
    -- what really happened replaces the guess.
    ON CONFLICT (delivery_id, attempt) DO UPDATE SET
        started_at = excluded.started_at, duration_ms = excluded.duration_ms,
        outcome = excluded.outcome, status_code = excluded.status_code,
        error_class = excluded.error_class, response_body = excluded.response_body
    WHERE webhook_attempts.outcome = 'worker_lost'
)
SELECT count(*) FROM delivery;

-- name: park_deliveries
-- Claimed deliveries that must not be attempted (paused: held; disabled: failed). No attempt
-- was made, so the counters go back.
UPDATE webhook_deliveries SET
    status = $2,
    last_error_class = coalesce($3, last_error_class),
    next_attempt_at = NULL,
    locked_until = NULL,
    lock_token = NULL,
    claimed_at = NULL,
    attempt_count = attempt_count - 1,
    cycle_attempts = cycle_attempts - 1,
    completed_at = CASE WHEN $2 = 'failed' THEN now() END
WHERE id = ANY ($1::uuid[]) AND lock_token = $4;

-- name: subscription_failed
-- The first failure after a success starts the clock; a failure once the clock has run past
-- $3 seconds disables the subscription. Returns the status after the change.
UPDATE webhook_subscriptions SET
    failing_since = coalesce(failing_since, $2),
    status = CASE WHEN failing_since < now() - make_interval(secs => $3) THEN 'disabled'
                  ELSE status END,
    disabled_reason = CASE WHEN failing_since < now() - make_interval(secs => $3) THEN 'failing'
                           ELSE disabled_reason END,
    disabled_at = CASE WHEN failing_since < now() - make_interval(secs => $3) THEN now()
                       ELSE disabled_at END
WHERE id = $1 AND status = 'active'
RETURNING status;

-- name: subscription_recovered
UPDATE webhook_subscriptions SET failing_since = NULL
WHERE id = $1 AND failing_since IS NOT NULL;

-- name: subscription_gone
UPDATE webhook_subscriptions SET status = 'disabled', disabled_reason = 'gone', disabled_at = now()
WHERE id = $1 AND status = 'active'
RETURNING status;

-- name: next_due_in
SELECT extract(epoch FROM min(next_attempt_at) - now())::float8
FROM webhook_deliveries WHERE status IN ('pending', 'retrying');

-- name: backlog
SELECT
    (SELECT count(*) FROM webhook_deliveries
     WHERE status IN ('pending', 'retrying') AND next_attempt_at <= now()) AS due,
    coalesce((SELECT extract(epoch FROM now() - min(next_attempt_at))::float8
              FROM webhook_deliveries
              WHERE status IN ('pending', 'retrying') AND next_attempt_at <= now()), 0) AS due_oldest,
    (SELECT count(*) FROM outbox WHERE dispatched_at IS NULL) AS outbox,
    coalesce((SELECT extract(epoch FROM now() - created_at)::float8 FROM outbox
              WHERE dispatched_at IS NULL ORDER BY id LIMIT 1), 0) AS outbox_oldest;

-- ============================================================================================
-- Key rotation (`riskgate keys rotate`)
-- ============================================================================================

-- name: secrets_not_under_key
SELECT id, subscription_id, key_id, sealed FROM webhook_secrets
WHERE key_id <> $1 ORDER BY id LIMIT $2;

-- name: reseal_secret
UPDATE webhook_secrets SET key_id = $3, sealed = $4 WHERE id = $1 AND key_id = $2;

-- name: test_secrets_not_under_key
SELECT id, target_key_id AS key_id, target_secret AS sealed FROM webhook_deliveries
WHERE target_key_id IS NOT NULL AND target_key_id <> $1 ORDER BY id LIMIT $2;

-- name: reseal_test_secret
UPDATE webhook_deliveries SET target_key_id = $3, target_secret = $4
WHERE id = $1 AND target_key_id = $2;

-- ============================================================================================
-- Retention (the worker's purge loop)
-- ============================================================================================

-- name: purge_deliveries
-- Up to $3 deliveries in the finished states $1 that finished more than $2 seconds ago, oldest
-- first, with their attempts. It locks only the rows it deletes, and SKIP LOCKED leaves a row a
-- writer holds (a replay under way) for the next run instead of waiting for it.
WITH doomed AS (
    SELECT id FROM webhook_deliveries
    WHERE status = ANY ($1::text[]) AND completed_at < now() - make_interval(secs => $2)
    ORDER BY completed_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), attempts AS (
    DELETE FROM webhook_attempts a USING doomed WHERE a.delivery_id = doomed.id
    RETURNING 1
), deliveries AS (
    DELETE FROM webhook_deliveries d USING doomed WHERE d.id = doomed.id
    RETURNING 1
)
SELECT (SELECT count(*) FROM deliveries) AS deliveries, (SELECT count(*) FROM attempts) AS attempts;

-- name: purge_outbox
-- Up to $2 outbox rows dispatched more than $1 seconds ago that no delivery refers to any more,
-- oldest first, from dispatch time $3 on: where the previous batch of the same run stopped, so
-- rows that must stay (their deliveries live on) are not scanned again by every batch.
-- Undispatched rows are never touched.
WITH doomed AS (
    SELECT o.id FROM outbox o
    WHERE o.dispatched_at < now() - make_interval(secs => $1) AND o.dispatched_at >= $3
      AND NOT EXISTS (SELECT FROM webhook_deliveries d WHERE d.outbox_id = o.id)
    ORDER BY o.dispatched_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM outbox o USING doomed WHERE o.id = doomed.id
    RETURNING o.dispatched_at
)
SELECT count(*) AS purged, max(dispatched_at) AS reached FROM gone;
