-- Bill orders: intake, reads, claims and leases. Loaded by billpay/store/queries.py.

-- name: claim_bills
-- Claim up to :limit rows of one queue view ({queue}): SKIP LOCKED, then a lease for :worker.
-- Rows with a live lease are not in the views, so two workers always get disjoint batches.
WITH picked AS (
    SELECT id FROM {queue}
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
