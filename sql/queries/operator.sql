-- What operators see and settle by hand (billpay/store/operator.py, `billpay refund` and
-- `billpay quarantine`).

-- name: held_refunds
-- Refunds parked for a person, oldest first, with the payment they return.
SELECT r.id, r.incoming_payment_id, r.reason, r.hold_reason, r.destination, r.amount,
       coalesce(r.asset_code, 'XLM') AS asset_code, r.asset_issuer, r.created_at,
       p.transaction_hash, p.operation_type, p.match_outcome
  FROM refunds r
  JOIN incoming_payments p ON p.id = r.incoming_payment_id
 WHERE r.status = 'held'
 ORDER BY r.id
 LIMIT :limit;

-- name: lock_refund_status
SELECT status FROM refunds WHERE id = :id FOR UPDATE;

-- name: note_refund_release
-- Who released or settled a held refund and why (the status writer moved it).
UPDATE refunds
   SET operator_note = :note, released_by = :actor, released_at = now()
 WHERE id = :id;

-- name: open_quarantine
-- Horizon records that could not be read, oldest first.
SELECT id, account, record_key, paging_token, error, created_at, record
  FROM ingest_quarantine
 WHERE resolved_at IS NULL
 ORDER BY id
 LIMIT :limit;

-- name: resolve_quarantine
-- An operator settled a quarantined record by hand.
UPDATE ingest_quarantine
   SET resolved_at = now(), resolved_by = :actor, resolution_note = :note
 WHERE id = :id AND resolved_at IS NULL
RETURNING id;
