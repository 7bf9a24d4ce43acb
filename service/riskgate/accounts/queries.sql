-- name: next_account_id
SELECT nextval(pg_get_serial_sequence('accounts', 'id'));

-- name: open_account
WITH claim AS (
    SELECT claim_idempotency_key($1, $2, $3, $4, $5, $6, $7) AS won
), account AS (
    INSERT INTO accounts (id, client_id, customer_ref, currency, balance_minor,
                          opening_balance_minor, created_at)
    SELECT $8, $1, $9, $10, $11, $11, $12 FROM claim WHERE won
    RETURNING id
), audit AS (
    INSERT INTO audit_log (client_id, actor, action, entity_type, entity_id, details)
    SELECT $1, $13, 'account.opened', 'account', account.id::text,
           jsonb_build_object('currency', $10::text, 'opening_balance_minor', $11::bigint)
    FROM account
)
SELECT won FROM claim;

-- name: get_account
SELECT id, customer_ref, currency, balance_minor, opening_balance_minor, status, created_at
FROM accounts WHERE id = $1 AND client_id = $2;

-- name: statement_head
SELECT id, customer_ref, currency, balance_minor, status
FROM accounts WHERE id = $1 AND client_id = $2;

-- name: statement_transactions
-- Served by transactions_account_recent: a range scan, newest first, never a table scan.
SELECT id, account_id, amount_minor, currency, status, reason, trace_id, created_at
FROM transactions
WHERE account_id = $1 AND ($2::uuid IS NULL OR id < $2)
ORDER BY id DESC
LIMIT $3;

-- name: set_status
WITH changed AS (
    UPDATE accounts SET status = $2 WHERE id = $1 AND status <> $2 RETURNING id, client_id
), audit AS (
    INSERT INTO audit_log (client_id, actor, action, entity_type, entity_id, details)
    SELECT changed.client_id, $3, 'account.' || $2, 'account', changed.id::text, '{}'::jsonb
    FROM changed
)
SELECT (SELECT count(*) FROM changed) AS changed,
       EXISTS (SELECT FROM accounts WHERE id = $1) AS found;

-- name: open_demo_account
-- `riskgate dev` only: account 1 for the demo client, and the id sequence moved past it.
WITH account AS (
    INSERT INTO accounts (id, client_id, customer_ref, currency, balance_minor,
                          opening_balance_minor, created_at)
    VALUES (1, $1, 'demo-customer-1', 'GBP', $2, $2, now())
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), audit AS (
    INSERT INTO audit_log (client_id, actor, action, entity_type, entity_id, details)
    SELECT $1, $3, 'account.opened', 'account', account.id::text,
           jsonb_build_object('currency', 'GBP', 'opening_balance_minor', $2::bigint)
    FROM account
)
-- Only when the row was inserted, and only forwards: never hand out an id twice.
SELECT setval(seq, greatest(1, coalesce(pg_sequence_last_value(seq::regclass), 1)))
FROM account, pg_get_serial_sequence('accounts', 'id') AS seq;
