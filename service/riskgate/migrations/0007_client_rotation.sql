-- Rotation with an overlap, clients managed from Kubernetes, and deleting clients.

-- While a rotation's overlap lasts, the previous secret still authenticates; the two columns are
-- set and cleared together. Only one previous generation is kept: rotating again during an
-- overlap ends the older one at once.
ALTER TABLE clients
    ADD COLUMN previous_secret_hash text,
    ADD COLUMN previous_secret_expires_at timestamptz,
    ADD CONSTRAINT clients_previous_secret_check
        CHECK ((previous_secret_hash IS NULL) = (previous_secret_expires_at IS NULL));

-- `<namespace>/<name>` of the ApiClient resource that owns the client; NULL for clients made with
-- the CLI. Set when the row is created and never changed: such clients are read-only elsewhere.
ALTER TABLE clients
    ADD COLUMN managed_ref text,
    ADD CONSTRAINT clients_managed_ref_key UNIQUE (managed_ref);

-- The app cannot delete rows (events, audit and subscriptions refer to clients): a deleted client
-- keeps its row as a tombstone, renamed out of the way, with no usable credential.
ALTER TABLE clients DROP CONSTRAINT clients_status_check;
ALTER TABLE clients
    ADD CONSTRAINT clients_status_check CHECK (status IN ('active', 'disabled', 'deleted'));

-- An API key replaced by a rotation keeps working until expires_at.
ALTER TABLE api_keys ADD COLUMN expires_at timestamptz;
