-- cNGN refunds: claims with a lease, the envelope lifecycle, holds and confirmation.
-- Loaded by billpay/store/queries.py; used by billpay/store/refunds.py. Every status change is
-- a status writer in sql/0007_status_writers.sql.

-- name: claim_refunds
-- Lease up to :limit due refunds (queue_refunds: pending or submitted, due, unleased) to :actor.
WITH next AS (
    SELECT id FROM queue_refunds
     ORDER BY next_attempt_at NULLS FIRST, id
     LIMIT :limit
       FOR UPDATE SKIP LOCKED
)
UPDATE refunds r
   SET claimed_by = :actor,
       claimed_until = now() + make_interval(secs => :lease_seconds),
       updated_at = now()
  FROM next
 WHERE r.id = next.id
RETURNING r.*;

-- name: get_refund
-- One refund row by id.
SELECT * FROM refunds WHERE id = :id;

-- name: lock_source_account
-- Session advisory lock on :key (one Stellar source account): one build/submit at a time.
SELECT pg_advisory_lock(hashtextextended(:key, 0));

-- name: unlock_source_account
-- Release lock_source_account.
SELECT pg_advisory_unlock(hashtextextended(:key, 0));

-- name: refund_mark_submitted
-- pending -> submitted with the signed envelope; the bill to refund_processing (status writer).
SELECT refund_mark_submitted(:id, :xdr, :tx_hash, :sequence, :max_time, :actor, :detail);

-- name: note_refund_submit_attempt
-- Count a POST of the stored envelope before it is made; no row: the envelope is not stored.
UPDATE refunds
   SET submit_attempts = submit_attempts + 1, submitted_at = coalesce(submitted_at, now()),
       updated_at = now()
 WHERE id = :id AND status = 'submitted' AND tx_hash = :tx_hash
RETURNING submit_attempts;

-- name: refund_reset
-- submitted -> pending/held without the envelope; the bill back to refund_initiated (writer).
SELECT refund_reset(:id, :tx_hash, :status, :hold_reason, :last_error,
                    CAST(:result_codes AS jsonb), :next_attempt_at, :actor, :detail);

-- name: refund_park
-- A refund without an envelope: held, or pending again at :next_attempt_at (status writer).
SELECT refund_park(:id, :status, :hold_reason, :last_error, CAST(:result_codes AS jsonb),
                   :next_attempt_at, :actor);

-- name: refund_recheck_later
-- The envelope stays (it may still land): release the lease, look again at :next_attempt_at.
UPDATE refunds
   SET last_error = :last_error, result_codes = CAST(:result_codes AS jsonb),
       next_attempt_at = :next_attempt_at, claimed_by = NULL, claimed_until = NULL,
       updated_at = now()
 WHERE id = :id AND status = :status
RETURNING id;

-- name: refund_mark_confirmed
-- On the ledger: confirmed with :tx_hash, the bill refunded (status writer).
SELECT refund_mark_confirmed(:id, :tx_hash, :actor, :detail);

-- name: refund_release_due
-- Held refunds for :reasons whose recheck time came, back to pending (status writer).
SELECT id FROM refund_release_due(:reasons, :limit, :actor) AS id;

-- name: refund_release
-- An operator releases one held refund: held -> pending (status writer).
SELECT refund_release(:id, :actor);
