-- Monitoring: what the demo, the benchmark and `billpay work` read to see how the pipeline is
-- doing. Loaded by billpay/store/queries.py.

-- name: count_work_left
-- Bills, refunds and notifications a worker could still move now: zero means idle.
SELECT (SELECT count(*) FROM bill_payments
         WHERE status NOT IN ('completed', 'refunded', 'expired', 'pending_payment'))
     + (SELECT count(*) FROM refunds WHERE status IN ('pending', 'submitted'))
     + (SELECT count(*) FROM notifications
         WHERE status = 'pending' AND next_attempt_at <= now());

-- name: expire_orders_now
-- The demo's users who come back after their order's 10 minutes ran out.
UPDATE bill_payments
   SET expires_at = now() - interval '1 second'
 WHERE reference = ANY(:references);

-- name: order_outcome
-- An order's state, token, and the refund of the first payment sent with :memo (if any).
SELECT b.status, b.token, b.updated_at, r.tx_hash, r.status AS refund_status, r.reason
  FROM bill_payments b
  LEFT JOIN refunds r ON r.incoming_payment_id =
       (SELECT id FROM incoming_payments WHERE memo = :memo ORDER BY id LIMIT 1)
 WHERE b.reference = :reference;

-- name: payment_refund_outcome
-- The refund of a payment that matched no order (by the memo it was sent with).
SELECT r.status AS refund_status, r.tx_hash, r.reason
  FROM incoming_payments p
  LEFT JOIN refunds r ON r.incoming_payment_id = p.id
 WHERE p.memo = :memo;

-- name: count_bills_by_status
SELECT status, count(*) FROM bill_payments GROUP BY status;

-- name: count_provider_calls
SELECT provider, count(*) FROM provider_attempts GROUP BY provider;

-- name: completion_latency
-- Seconds from cNGN received to completed over completed bills: p50, p95, p99, max, count.
WITH received AS (
    SELECT b.id, min(e.at) AS at
      FROM bill_payments b
      JOIN bill_payment_events e ON e.bill_payment_id = b.id AND e.to_state = 'cngn_received'
     GROUP BY b.id
)
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY s),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY s),
       max(s),
       count(*)
  FROM (SELECT extract(epoch FROM b.completed_at - r.at) AS s
          FROM bill_payments b
          JOIN received r ON r.id = b.id
         WHERE b.status = 'completed') t;

-- name: settlement_window
-- The first cNGN received and the last bill settled (completed or refunded).
SELECT min(e.at), max(coalesce(b.completed_at, b.refunded_at))
  FROM bill_payments b
  JOIN bill_payment_events e ON e.bill_payment_id = b.id AND e.to_state = 'cngn_received';
