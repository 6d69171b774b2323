-- The notifications outbox: enqueue, claim, settle.
-- Loaded by billpay/store/queries.py; used by billpay/store/notifications.py.

-- name: enqueue_notification
-- One outbox row in the caller's transaction; a repeated :dedupe key is a no-op (no row back).
INSERT INTO notifications (bill_payment_id, kind, audience, payload, dedupe_key)
VALUES (:bill, :kind, :audience, CAST(:payload AS jsonb), :dedupe)
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING id;

-- name: claim_notifications
-- Lease up to :limit due notifications (queue_notifications) to :worker, SKIP LOCKED; each with
-- the API client that made its bill (NULLs for CLI orders and alerts without a bill), so
-- delivery routes a customer message to that client's webhook with no query per row.
WITH picked AS (
    SELECT id FROM queue_notifications
     ORDER BY next_attempt_at, id
     LIMIT :limit
       FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE notifications n
       SET claimed_by = :worker, claimed_until = now() + make_interval(secs => :lease)
      FROM picked
     WHERE n.id = picked.id
    RETURNING n.*
)
SELECT claimed.*,
       c.name         AS client_name,
       c.webhook_url  AS client_webhook_url,
       c.webhook_salt AS client_webhook_salt
  FROM claimed
  LEFT JOIN bill_payments b ON b.id = claimed.bill_payment_id
  LEFT JOIN api_clients c ON c.id = b.api_client_id;

-- name: mark_notification_sent
-- Delivered by the lease holder :worker: pending -> sent, lease released.
UPDATE notifications
   SET status = 'sent', sent_at = now(), attempts = attempts + 1,
       claimed_by = NULL, claimed_until = NULL, last_error = NULL
 WHERE id = :id AND status = 'pending' AND claimed_by = :worker
RETURNING id;

-- name: mark_notification_attempt_failed
-- Count a failed delivery by :worker; after :max attempts the row is failed, else retried later.
UPDATE notifications
   SET attempts = attempts + 1, last_error = :error,
       status = CASE WHEN attempts + 1 >= :max THEN 'failed' ELSE 'pending' END,
       next_attempt_at = now() + make_interval(secs => :backoff),
       claimed_by = NULL, claimed_until = NULL
 WHERE id = :id AND status = 'pending' AND claimed_by = :worker
RETURNING status;
