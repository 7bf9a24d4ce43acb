-- Core schema: rule versions, scored events, idempotency records, the outbox and the audit chain.

-- The role every API/worker session runs as (SET ROLE): ordinary DML, but the audit log is
-- insert-only for it. Created here so a fresh database is safe by default.
-- Roles are cluster-wide while the migration lock is per database: two databases on one
-- server migrating at once may both try to create it, and the loser just finds it there.
DO $$
BEGIN
    CREATE ROLE riskgate_app NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

-- Rule versions are data: weights and thresholds. Exactly one is active; any number may run
-- in shadow (scored and stored beside the active decision, never returned).
CREATE TABLE rule_versions (
    version          text PRIMARY KEY CHECK (version ~ '^[a-z0-9_]{1,32}$'),
    weights          jsonb NOT NULL,
    review_threshold numeric(4, 1) NOT NULL CHECK (review_threshold BETWEEN 0 AND 100),
    hold_threshold   numeric(4, 1) NOT NULL CHECK (hold_threshold BETWEEN 0 AND 100),
    status           text NOT NULL CHECK (status IN ('active', 'shadow', 'retired')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (review_threshold <= hold_threshold)
);
CREATE UNIQUE INDEX rule_versions_one_active ON rule_versions ((true)) WHERE status = 'active';

INSERT INTO rule_versions (version, weights, review_threshold, hold_threshold, status)
VALUES ('v0_rules', '{"delay": 30, "weather": 25, "geo": 25, "payment_anomaly": 20}', 30.0, 60.0, 'active');

-- One row per scored event; id is a UUIDv7, so id order is creation order (cursor pagination).
CREATE TABLE events (
    id            uuid PRIMARY KEY,
    client_id     uuid NOT NULL,
    event_id      text NOT NULL,
    source        text NOT NULL,
    signals       jsonb NOT NULL,
    score         numeric(4, 1) NOT NULL CHECK (score BETWEEN 0 AND 100),
    action        text NOT NULL CHECK (action IN ('allow', 'review', 'hold')),
    score_version text NOT NULL REFERENCES rule_versions (version),
    reasons       jsonb NOT NULL,
    trace_id      text NOT NULL,
    created_at    timestamptz NOT NULL,
    CONSTRAINT events_client_event_id_key UNIQUE (client_id, event_id)
);
CREATE INDEX events_client_recent ON events (client_id, id DESC);
CREATE INDEX events_client_action_recent ON events (client_id, action, id DESC);
CREATE INDEX events_client_source_recent ON events (client_id, source, id DESC);

CREATE TABLE shadow_decisions (
    event_ref     uuid NOT NULL REFERENCES events (id),
    score_version text NOT NULL REFERENCES rule_versions (version),
    score         numeric(4, 1) NOT NULL,
    action        text NOT NULL,
    reasons       jsonb NOT NULL,
    PRIMARY KEY (event_ref, score_version)
);

-- The durable half of idempotency: the uniqueness guarantee and the stored response.
-- A row exists only once its request committed, so a crashed request leaves nothing behind.
CREATE TABLE idempotency_keys (
    client_id        uuid NOT NULL,
    key              text NOT NULL,
    fingerprint      bytea NOT NULL,
    response_status  smallint NOT NULL,
    response_headers jsonb NOT NULL,
    response_body    bytea NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    PRIMARY KEY (client_id, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- Claims (client, key) for this transaction, or reports that it is taken. An expired record
-- is overwritten in place, so an old key can be used again after its 72 h.
CREATE FUNCTION claim_idempotency_key(
    p_client_id uuid, p_key text, p_fingerprint bytea, p_status smallint,
    p_headers jsonb, p_body bytea, p_ttl_seconds integer
) RETURNS boolean LANGUAGE sql VOLATILE AS $$
    WITH claimed AS (
        INSERT INTO idempotency_keys AS k
            (client_id, key, fingerprint, response_status, response_headers, response_body, expires_at)
        VALUES (p_client_id, p_key, p_fingerprint, p_status, p_headers, p_body,
                now() + make_interval(secs => p_ttl_seconds))
        ON CONFLICT (client_id, key) DO UPDATE
            SET fingerprint = EXCLUDED.fingerprint,
                response_status = EXCLUDED.response_status,
                response_headers = EXCLUDED.response_headers,
                response_body = EXCLUDED.response_body,
                created_at = now(),
                expires_at = EXCLUDED.expires_at
            WHERE k.expires_at <= now()
        RETURNING 1
    )
    SELECT EXISTS (SELECT FROM claimed)
$$;

-- Transactional outbox: written in the same transaction as the decision or transaction it
-- describes; the webhook worker delivers from here.
CREATE TABLE outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_type   text NOT NULL,
    client_id    uuid,
    aggregate_id uuid NOT NULL,
    payload      jsonb NOT NULL,
    traceparent  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    dispatched_at timestamptz
);
CREATE INDEX outbox_pending ON outbox (id) WHERE dispatched_at IS NULL;

-- Append-only audit log, hash-chained. There are AUDIT_CHAINS independent chains (16): one
-- chain head would make every writing transaction in the system queue for one row lock, held
-- through its commit's WAL flush, so writes could never commit in groups. Each entry belongs to
-- one chain, picked by the writing session (a pooled connection stays on its chain); its hash
-- covers its content, its chain position and the previous entry's hash in that chain, and seq is
-- assigned under that chain's head lock, so within a chain seq order is commit order. id orders
-- entries across chains.
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain       smallint NOT NULL,
    seq         bigint NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    client_id   uuid,
    actor       text NOT NULL,
    action      text NOT NULL,
    entity_type text NOT NULL,
    entity_id   text NOT NULL,
    details     jsonb NOT NULL,
    prev_hash   bytea NOT NULL,
    hash        bytea NOT NULL,
    CONSTRAINT audit_log_chain_seq_key UNIQUE (chain, seq)
);
CREATE INDEX audit_log_entity ON audit_log (entity_type, entity_id, id);

CREATE TABLE audit_chain_head (
    chain     smallint PRIMARY KEY,
    last_seq  bigint NOT NULL,
    last_hash bytea NOT NULL
);
INSERT INTO audit_chain_head (chain, last_seq, last_hash)
SELECT chain, 0, decode(repeat('00', 32), 'hex') FROM generate_series(0, 15) AS chain;

-- The canonical digest of one entry: `riskgate audit verify` recomputes it with this very
-- function, so the chain has exactly one definition.
CREATE FUNCTION audit_entry_hash(
    prev_hash bytea, chain smallint, seq bigint, occurred_at timestamptz, client_id uuid,
    actor text, action text, entity_type text, entity_id text, details jsonb
) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT sha256(prev_hash || convert_to(concat_ws(E'\x1f',
        chain::text,
        seq::text,
        (extract(epoch FROM occurred_at) * 1000000)::bigint::text,
        coalesce(client_id::text, ''),
        actor, action, entity_type, entity_id,
        details::text), 'UTF8'))
$$;

-- SECURITY DEFINER: the app role may append, but cannot touch the chain heads itself.
CREATE FUNCTION audit_log_chain() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public AS $$
DECLARE
    head audit_chain_head%ROWTYPE;
BEGIN
    SELECT * INTO head FROM audit_chain_head
    WHERE chain = pg_backend_pid() % 16
    FOR UPDATE;
    NEW.chain := head.chain;
    NEW.seq := head.last_seq + 1;
    NEW.occurred_at := now();  -- the database's clock, not the writer's: no back-dating
    NEW.prev_hash := head.last_hash;
    NEW.hash := audit_entry_hash(NEW.prev_hash, NEW.chain, NEW.seq, NEW.occurred_at,
                                 NEW.client_id, NEW.actor, NEW.action, NEW.entity_type,
                                 NEW.entity_id, NEW.details);
    UPDATE audit_chain_head SET last_seq = NEW.seq, last_hash = NEW.hash WHERE chain = head.chain;
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_chain();

-- Belt and braces beyond the grants: even the owner cannot rewrite history without first
-- disabling triggers, which needs superuser-level intent and leaves the chain broken anyway.
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

-- Privileges of the app role.
GRANT USAGE ON SCHEMA public TO riskgate_app;
GRANT SELECT ON rule_versions TO riskgate_app;
GRANT SELECT, INSERT ON events, shadow_decisions TO riskgate_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO riskgate_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON outbox TO riskgate_app;
GRANT SELECT, INSERT ON audit_log TO riskgate_app;
GRANT SELECT ON audit_chain_head TO riskgate_app;
GRANT EXECUTE ON FUNCTION claim_idempotency_key, audit_entry_hash TO riskgate_app;
