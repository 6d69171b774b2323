-- Incoming cNGN: the ingest cursor, stored payments, matching them to orders.
-- Loaded by billpay/store/queries.py; used by billpay/store/incoming.py.

-- name: get_ingest_cursor
-- The stored Horizon paging token for :account (no row: never ingested).
SELECT cursor FROM ingest_cursors WHERE account = :account;

-- name: advance_ingest_cursor
-- Compare-and-set :old -> :new: the row lock makes a second ingester wait, then find it moved.
UPDATE ingest_cursors SET cursor = :new, updated_at = now()
 WHERE account = :account AND cursor = :old
RETURNING account;

-- name: create_ingest_cursor
-- The first cursor of :account; a concurrent creator wins and this returns no row.
INSERT INTO ingest_cursors (account, cursor) VALUES (:account, :new)
ON CONFLICT (account) DO NOTHING
RETURNING account;

-- name: insert_incoming_payment
-- Store one Horizon payment operation; a replayed page stores nothing twice.
INSERT INTO incoming_payments (
    operation_id, paging_token, transaction_hash, operation_type, from_account, from_muxed,
    to_account, to_muxed_id, asset_type, asset_code, asset_issuer, amount, memo_type, memo,
    ledger, ledger_time)
VALUES (
    :operation_id, :paging_token, :transaction_hash, :operation_type, :from_account,
    :from_muxed, :to_account, :to_muxed_id, :asset_type, :asset_code, :asset_issuer, :amount,
    :memo_type, :memo, :ledger, :ledger_time)
ON CONFLICT (operation_id) DO NOTHING
RETURNING id;

-- name: lock_next_unmatched_payment
-- The oldest payment without a match outcome, locked; SKIP LOCKED: two matchers never share one.
SELECT id, operation_id, transaction_hash, operation_type, from_account, from_muxed,
       to_muxed_id, asset_type, asset_code, asset_issuer, amount, memo_type, memo, ledger_time
  FROM queue_match_payments
 ORDER BY id
 LIMIT 1
   FOR UPDATE SKIP LOCKED;

-- name: lock_order_by_reference
-- The order a memo names, locked so expiry and matching cannot interleave; open on the DB clock.
SELECT id, reference, status, amount_cngn, expires_at, expires_at > now() AS open
  FROM bill_payments
 WHERE reference = :reference
   FOR UPDATE;

-- name: lock_order_by_muxed_id
-- The order a muxed id names (its random bill_payments.muxed_id, sql/0016), locked like
-- lock_order_by_reference.
SELECT id, reference, status, amount_cngn, expires_at, expires_at > now() AS open
  FROM bill_payments
 WHERE muxed_id = :muxed_id
   FOR UPDATE;

-- name: insert_quarantined_record
-- A record that claims to be inbound but cannot be read; a replayed page stores nothing twice.
INSERT INTO ingest_quarantine (account, record_key, paging_token, record, error)
VALUES (:account, :record_key, :paging_token, CAST(:record AS jsonb), :error)
ON CONFLICT (account, record_key) DO NOTHING
RETURNING id;

-- name: record_match_outcome
-- The payment's one match outcome (and the order it names, if any).
UPDATE incoming_payments
   SET match_outcome = :outcome, bill_payment_id = :bill_id, matched_at = now()
 WHERE id = :payment_id AND match_outcome IS NULL
RETURNING id;

-- name: bill_mark_paid
-- pending_payment -> cngn_received (status writer in sql/0007_status_writers.sql).
SELECT bill_mark_paid(:bill_id, :payment_id, :paid_at, :actor, :detail);

-- name: bill_refund_amount_mismatch
-- Link the payment, pending_payment -> refund_initiated with its refund row (status writer).
SELECT bill_refund_amount_mismatch(:bill_id, :payment_id, :actor, :detail);

-- name: insert_refund_without_order
-- A refund the order does not own (not payable, unknown reference): pending, or held for review.
INSERT INTO refunds (incoming_payment_id, bill_payment_id, destination, amount, memo, reason,
                     status, hold_reason)
VALUES (:payment_id, :bill_id, :destination, :amount, :memo, :reason, :status, :hold_reason)
ON CONFLICT (incoming_payment_id) DO NOTHING
RETURNING id;
