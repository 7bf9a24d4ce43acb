-- Webhooks: subscriptions, their (encrypted) signing secrets, deliveries with every attempt,
-- and the wake-up signal from the outbox to the delivery workers.

-- A UUIDv7 (time-ordered: id order is creation order, so ids double as pagination cursors).
-- PostgreSQL 18 has uuidv7(); this is the same layout for older servers.
CREATE FUNCTION webhook_uuid7() RETURNS uuid LANGUAGE sql VOLATILE AS $$
    SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
        PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
        FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid
$$;

-- owner_client_id manages the subscription; client_ids are the clients whose events it
-- receives (tenant isolation): {owner} for subscriptions made over REST, the clients named by
-- the sync call for those managed from Kubernetes.
CREATE TABLE webhook_subscriptions (
    id              uuid PRIMARY KEY,
    owner_client_id uuid NOT NULL REFERENCES clients (id),
    client_ids      uuid[] NOT NULL CHECK (cardinality(client_ids) >= 1),
    url             text NOT NULL CHECK (url ~ '^https?://' AND length(url) <= 2048),
    event_types     text[] NOT NULL CHECK (cardinality(event_types) >= 1),
    actions         text[],
    paused          boolean NOT NULL DEFAULT false,
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    disabled_reason text CHECK (disabled_reason IN ('gone', 'failing', 'manual')),
    disabled_at     timestamptz,
    failing_since   timestamptz,
    managed_by      text NOT NULL DEFAULT 'api' CHECK (managed_by IN ('api', 'kubernetes')),
    managed_ref     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_subscriptions_managed_ref_key UNIQUE (managed_ref),
    CHECK ((managed_by = 'kubernetes') = (managed_ref IS NOT NULL))
);
CREATE INDEX webhook_subscriptions_owner ON webhook_subscriptions (owner_client_id, id DESC);
CREATE INDEX webhook_subscriptions_clients ON webhook_subscriptions USING gin (client_ids);

-- Signing secrets, AES-GCM sealed under key `key_id` of the key ring (settings), bound to their
-- subscription. Several rows while a rotation overlaps: every unexpired secret signs.
CREATE TABLE webhook_secrets (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    subscription_id uuid NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    key_id          text NOT NULL,
    sealed          bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz
);
CREATE INDEX webhook_secrets_subscription ON webhook_secrets (subscription_id);
CREATE INDEX webhook_secrets_key ON webhook_secrets (key_id);

-- One row per (event, subscription): the message. Its id is the `webhook-id` receivers see,
-- stable across retries and replays. A test sent to a bare URL has no subscription and carries
-- its own target and sealed secret.
CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY,
    subscription_id uuid REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    client_id       uuid NOT NULL,
    outbox_id       bigint NOT NULL REFERENCES outbox (id),
    event_type      text NOT NULL,
    aggregate_id    uuid NOT NULL,
    status          text NOT NULL
        CHECK (status IN ('pending', 'retrying', 'held', 'succeeded', 'failed', 'exhausted')),
    attempt_count   integer NOT NULL DEFAULT 0,
    cycle_attempts  integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    locked_until    timestamptz,
    lock_token      uuid,
    last_attempt_at timestamptz,
    last_status_code smallint,
    last_error_class text,
    completed_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    target_url      text,
    target_key_id   text,
    target_secret   bytea,
    CHECK (num_nonnulls(subscription_id, target_url) = 1)
);
-- The claim walks this index in due order; finished rows leave it.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status IN ('pending', 'retrying');
CREATE INDEX webhook_deliveries_subscription ON webhook_deliveries (subscription_id, id DESC);
CREATE INDEX webhook_deliveries_client ON webhook_deliveries (client_id, id DESC);
CREATE INDEX webhook_deliveries_aggregate ON webhook_deliveries (aggregate_id);
CREATE INDEX webhook_deliveries_target_key ON webhook_deliveries (target_key_id)
    WHERE target_key_id IS NOT NULL;

CREATE TABLE webhook_attempts (
    delivery_id   uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt       integer NOT NULL,
    started_at    timestamptz NOT NULL,
    duration_ms   integer NOT NULL,
    outcome       text NOT NULL CHECK (outcome IN ('succeeded', 'retrying', 'failed', 'exhausted')),
    status_code   smallint,
    error_class   text,
    response_body text,
    PRIMARY KEY (delivery_id, attempt)
);

-- Wake the workers (LISTEN riskgate_outbox) when an outbox row commits; polling is the
-- safety net for a missed notification. Statement-level: one notification per insert statement.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('riskgate_outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- What GET /v1/webhooks/deliveries shows of a delivery: its state and its 20 latest attempts,
-- with who may see it (the client whose event it was, or the subscription's owner).
CREATE VIEW webhook_delivery_log AS
SELECT d.id, d.client_id, s.owner_client_id, d.subscription_id, d.target_url AS url,
       d.event_type, d.aggregate_id AS event_ref, d.status, d.attempt_count AS attempts_made,
       CASE WHEN d.status IN ('pending', 'retrying') THEN d.next_attempt_at END AS next_attempt_at,
       d.last_status_code, d.last_error_class, d.created_at, d.completed_at,
       s.status AS subscription_status,
       coalesce((SELECT jsonb_agg(jsonb_build_object(
                    'attempt', a.attempt, 'started_at', a.started_at, 'duration_ms', a.duration_ms,
                    'outcome', a.outcome, 'status_code', a.status_code,
                    'error_class', a.error_class, 'response_body', a.response_body)
                    ORDER BY a.attempt DESC)
                 FROM (SELECT * FROM webhook_attempts wa WHERE wa.delivery_id = d.id
                       ORDER BY wa.attempt DESC LIMIT 20) a), '[]') AS attempts
FROM webhook_deliveries d
LEFT JOIN webhook_subscriptions s ON s.id = d.subscription_id;

GRANT SELECT, INSERT, UPDATE, DELETE
    ON webhook_subscriptions, webhook_secrets, webhook_deliveries, webhook_attempts
    TO riskgate_app;
GRANT SELECT ON webhook_delivery_log TO riskgate_app;
GRANT EXECUTE ON FUNCTION webhook_uuid7 TO riskgate_app;
