-- Provider webhook hints and the reversal re-check of delivered VTpass bills (sql/0018).
-- Loaded by billpay/store/queries.py; used by billpay/store/reversals.py.

-- name: bill_provider_hint
SELECT bill_provider_hint(:provider, :reference, :reversal, :actor, :detail);

-- name: claim_reversal_rechecks
-- Claim up to :limit delivered VTpass bills due for their one re-check: due when a webhook or
-- a failed try set reversal_check_at, else :delay seconds after delivery (:delay 0: only the
-- ones a webhook made due). SKIP LOCKED, then a lease for :worker.
WITH picked AS (
    SELECT id FROM queue_reversal_rechecks
     WHERE coalesce(reversal_check_at,
                    CASE WHEN :delay > 0
                         THEN completed_at + make_interval(secs => :delay) END) <= now()
     ORDER BY id
     LIMIT :limit
       FOR UPDATE SKIP LOCKED
)
UPDATE bill_payments b
   SET claimed_by = :worker,
       claimed_until = now() + make_interval(secs => :lease)
  FROM picked
 WHERE b.id = picked.id
RETURNING b.*;

-- name: claim_hinted_reversal_rechecks
-- As claim_reversal_rechecks with :delay 0 (no scheduled re-checks): only the bills a webhook
-- or a failed try made due, read through bill_payments_q_reversal_due (sql/0022).
WITH picked AS (
    SELECT id FROM queue_reversal_rechecks
     WHERE reversal_check_at <= now()
     ORDER BY reversal_check_at
     LIMIT :limit
       FOR UPDATE SKIP LOCKED
)
UPDATE bill_payments b
   SET claimed_by = :worker,
       claimed_until = now() + make_interval(secs => :lease)
  FROM picked
 WHERE b.id = picked.id
RETURNING b.*;

-- name: bill_reversal_follow_up
SELECT bill_reversal_follow_up(:id, :worker, :hints, CAST(:at AS timestamptz), :actor, :detail);

-- name: bill_reversal_checked
SELECT bill_reversal_checked(:id, :worker, :hints, :delay, :actor, :detail);

-- name: bill_reversal_check_later
SELECT bill_reversal_check_later(:id, :worker, :hints, CAST(:next_check_at AS timestamptz));

-- name: bill_reverse
SELECT bill_reverse(:id, :worker, :actor, :detail, :reason);
