-- name: account_for_debit
SELECT currency, balance_minor, status FROM accounts WHERE id = $1 AND client_id = $2;

-- name: record_transaction
-- The service decided the outcome on a premise about the account ($14, and the currency $11);
-- this statement locks the account row and checks that premise on the current row. Only if it
-- holds does it claim the idempotency key, debit (approved only), store the transaction and
-- write the outbox and audit rows: one statement, one round trip, the row lock held only until
-- commit. `premise_held` false (also for an unknown account or another currency) means the
-- service must read the account and decide again.
WITH account AS (
    SELECT id, balance_minor, status FROM accounts
    WHERE id = $8 AND client_id = $1 AND currency = $11
    FOR UPDATE
), premise AS (
    SELECT 1 FROM account
    WHERE CASE $14::text
        WHEN 'active_and_covered' THEN status = 'active' AND balance_minor >= $10
        WHEN 'active_not_covered' THEN status = 'active' AND balance_minor < $10
        WHEN 'not_active' THEN status <> 'active'
    END
), claim AS (
    SELECT claim_idempotency_key($1, $2, $3, $4, $5, $6, $7) AS won FROM premise
), debit AS (
    UPDATE accounts SET balance_minor = accounts.balance_minor - $10
    FROM claim
    WHERE accounts.id = $8 AND claim.won AND $12::text = 'approved'
    RETURNING accounts.balance_minor
), txn AS (
    INSERT INTO transactions (id, client_id, account_id, amount_minor, currency, status, reason,
                              balance_after_minor, trace_id, created_at)
    SELECT $9, $1, $8, $10, $11, $12, $13, (SELECT balance_minor FROM debit), $15, $16
    FROM claim WHERE won
    RETURNING id, balance_after_minor
), outbox AS (
    INSERT INTO outbox (event_type, client_id, aggregate_id, payload, traceparent)
    SELECT $17, $1, txn.id, $18, $19 FROM txn
), audit AS (
    INSERT INTO audit_log (client_id, actor, action, entity_type, entity_id, details)
    SELECT $1, $20, $17, 'transaction', txn.id::text,
           jsonb_build_object('account_id', $8::bigint, 'amount_minor', $10::bigint,
                              'currency', $11::text, 'status', $12::text, 'reason', $13::text,
                              'balance_after_minor', txn.balance_after_minor)
    FROM txn
)
SELECT EXISTS (SELECT FROM premise) AS premise_held, (SELECT won FROM claim) AS won;

-- name: get_transaction
SELECT id, account_id, amount_minor, currency, status, reason, trace_id, created_at
FROM transactions WHERE id = $1 AND client_id = $2;
