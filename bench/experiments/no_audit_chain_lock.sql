-- EXPERIMENT ONLY, never production: measures what the audit chain's global lock costs.
--
-- The production trigger (0001_core.sql, audit_log_chain) takes a row lock on the single
-- audit_chain_head row and holds it until COMMIT, so every write request in the whole service
-- is serialised through one lock held across the commit's WAL fsync. This replacement numbers
-- rows from a sequence and hashes each row without its predecessor: same row shape and about
-- the same CPU (one sha256), but no shared lock and therefore NO CHAIN. Use it only to size
-- the gain of moving the chaining off the request path (see docs/benchmarks.md).
--
--   python bench/run.py --sql bench/experiments/no_audit_chain_lock.sql
CREATE SEQUENCE IF NOT EXISTS audit_log_seq_experiment;

CREATE OR REPLACE FUNCTION audit_log_chain() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public AS $$
BEGIN
    NEW.seq := nextval('audit_log_seq_experiment');
    NEW.prev_hash := decode(repeat('00', 32), 'hex');
    NEW.hash := audit_entry_hash(NEW.prev_hash, NEW.seq, NEW.occurred_at, NEW.client_id, NEW.actor,
                                 NEW.action, NEW.entity_type, NEW.entity_id, NEW.details);
    RETURN NEW;
END
$$;
