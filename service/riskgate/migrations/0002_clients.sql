-- API clients: OAuth2 client credentials and API keys. Secrets are stored only as hashes.

CREATE TABLE clients (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9._-]{1,62}$'),
    secret_hash text NOT NULL,
    scopes      text[] NOT NULL,
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    rate_limit  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT clients_name_key UNIQUE (name)
);

-- An API key is looked up by the SHA-256 of the whole key (keys are 256-bit random, so a
-- plain hash is as strong as a slow one and keeps the per-request lookup cheap).
CREATE TABLE api_keys (
    id         uuid PRIMARY KEY,
    client_ref uuid NOT NULL REFERENCES clients (id),
    key_hash   bytea NOT NULL,
    prefix     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash)
);
CREATE INDEX api_keys_client ON api_keys (client_ref);

GRANT SELECT, INSERT, UPDATE ON clients, api_keys TO riskgate_app;
