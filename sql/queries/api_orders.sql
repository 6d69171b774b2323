-- Orders of API clients (billpay/api/orders.py): idempotent creation, one client's reads.

-- name: lock_idempotency_key
-- Serialise requests carrying one client's Idempotency-Key until this transaction ends: a
-- concurrent duplicate waits here, then finds the key the first one recorded.
SELECT pg_advisory_xact_lock(hashtextextended(CAST(:client_id AS text) || ':' || :key, 13));

-- name: idempotency_key_order
-- The order an earlier request with this key created, the hashes of that request's body
-- (validated: request_hash; as sent: body_hash) and the warnings it was answered.
SELECT k.request_hash, k.body_hash, k.warnings AS idempotency_warnings, b.*
  FROM api_idempotency_keys k
  JOIN bill_payments b ON b.id = k.bill_payment_id
 WHERE k.api_client_id = :client_id AND k.idempotency_key = :key;

-- name: insert_idempotency_key
-- Remember which order this key created (the primary key backs the advisory lock up).
INSERT INTO api_idempotency_keys
       (api_client_id, idempotency_key, request_hash, body_hash, warnings, bill_payment_id)
VALUES (:client_id, :key, :request_hash, :body_hash, CAST(:warnings AS jsonb), :bill_id);

-- name: client_order_by_reference
-- One order, only when this client created it (another client's order reads as missing).
SELECT * FROM bill_payments WHERE reference = :reference AND api_client_id = :client_id;

-- name: client_order_history
-- This client's orders, newest first, after the cursor :before_id (NULL: from the newest);
-- optionally only those for one customer phone and/or one of the :accounts spellings.
-- Served by the partial index bill_payments_client_history (api_client_id, id DESC).
SELECT * FROM bill_payments
 WHERE api_client_id = :client_id
   AND (CAST(:before_id AS bigint) IS NULL OR id < CAST(:before_id AS bigint))
   AND (CAST(:phone AS text) IS NULL OR customer_phone = CAST(:phone AS text))
   AND (CAST(:accounts AS text[]) IS NULL OR account_number = ANY(CAST(:accounts AS text[])))
 ORDER BY id DESC
 LIMIT :limit;

-- name: latest_refund_for_bill
-- The newest refund of money paid for this bill, with the asset it returns.
SELECT status, amount, asset_type, asset_code, asset_issuer, tx_hash, reason
  FROM refunds WHERE bill_payment_id = :bill_id ORDER BY id DESC LIMIT 1;
