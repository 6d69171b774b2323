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

-- name: insert_order
-- A new pending_payment order (:api_client_id NULL: from the CLI); nothing when the reference
-- is taken (the caller draws another).
INSERT INTO bill_payments (reference, bill_type, biller, product_code, account_number,
    account_type, network, customer_phone, customer_email, amount_kobo, fee_kobo, amount_cngn,
    expires_at, api_client_id)
VALUES (:reference, :bill_type, :biller, :product_code, :account_number, :account_type,
    :network, :phone, :email, :amount_kobo, :fee_kobo, :amount_cngn,
    now() + make_interval(secs => :ttl), :api_client_id)
ON CONFLICT ON CONSTRAINT bill_payments_reference_key DO NOTHING
RETURNING *;

-- name: set_actor
-- Attribute the audit events the trigger writes in this transaction (order intake).
SELECT billpay_set_actor(:actor, :detail);

-- name: bill_by_reference
SELECT * FROM bill_payments WHERE reference = :reference;

-- name: bill_by_id
SELECT * FROM bill_payments WHERE id = :id;

-- name: bills_by_references
-- The bills an operator named, oldest first.
SELECT * FROM bill_payments WHERE reference = ANY(:references) ORDER BY id LIMIT :limit;

-- name: bills_waiting_in_state
-- Bills in one state that nobody has moved for :minutes, the longest waiting first.
SELECT * FROM bill_payments
 WHERE status = :state AND updated_at < now() - make_interval(mins => :minutes)
 ORDER BY updated_at LIMIT :limit;

-- name: bill_events
-- A bill's audit trail (every state change, and operator notes), in order.
SELECT from_state, to_state, at, actor, detail FROM bill_payment_events
 WHERE bill_payment_id = :id ORDER BY id;

-- name: release_bills
-- Give back the leases :worker holds on these bills (end of a stage, graceful shutdown).
UPDATE bill_payments SET claimed_by = NULL, claimed_until = NULL
 WHERE id = ANY(:ids) AND claimed_by = :worker;

-- name: release_leases_like
-- Give back every lease on {table} held by workers whose id matches :pattern (a process's
-- leases on SIGTERM: claimable again at once instead of after the lease).
UPDATE {table} SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by LIKE :pattern;

-- name: claim_bill
-- Claim one bill for its next step when it is in queue view {queue} now (due, not leased
-- elsewhere): a pipeline task chains verify -> pay on one bill without waiting for a tick.
UPDATE bill_payments b
   SET claimed_by = :worker,
       claimed_until = now() + make_interval(secs => :lease)
 WHERE b.id = (SELECT id FROM {queue} WHERE id = :id FOR UPDATE SKIP LOCKED)
RETURNING b.id;

-- name: lease_bill
-- An operator's worker takes the lease on one bill for a step it runs by hand.
UPDATE bill_payments
   SET claimed_by = :worker, claimed_until = now() + make_interval(secs => :lease)
 WHERE id = :id;

-- The status writers (sql/0006_bill_status_writers.sql): one line each.

-- name: bill_begin_step
SELECT bill_begin_step(:id, :source, :target, :worker, :actor, :detail);

-- name: bill_verified
SELECT bill_verified(:id, :worker, :actor, :detail, CAST(:verification AS jsonb));

-- name: bill_open_attempt
SELECT bill_open_attempt(:id, :worker, :provider, :attempt_reference, :lease);

-- name: bill_wait
SELECT bill_wait(:id, :source, :worker, :actor, :detail, :retry_count, :requery_count,
                 CAST(:next_attempt_at AS timestamptz), :set_error, :last_error,
                 :last_error_class, :provider_reference);

-- name: bill_complete
SELECT bill_complete(:id, :source, :worker, :actor, :detail, :token, :units, :provider_reference);

-- name: bill_schedule_retry
SELECT bill_schedule_retry(:id, :source, :worker, :actor, :detail, :retry_count,
                           CAST(:next_attempt_at AS timestamptz), :last_error, :last_error_class);

-- name: bill_give_up
SELECT bill_give_up(:id, :source, :worker, :actor, :detail, :account_invalid, :set_error,
                    :last_error, :last_error_class, :refund_reason);

-- name: bill_send_to_refund
SELECT bill_send_to_refund(:id, :actor, :reason);

-- name: bill_expire_due
SELECT bill_expire_due(:limit, :actor) AS reference;

-- name: bill_requeue
SELECT bill_requeue(:id, :actor, :detail);

-- name: bill_step_failed
SELECT bill_step_failed(:id, :worker, :stage, :error, CAST(:next_attempt_at AS timestamptz));

-- name: bill_step_succeeded
SELECT bill_step_succeeded(:id);

-- name: bill_claim_as_planned
SELECT * FROM bill_claim_as_planned(:id, :worker, :lease, :status, :attempt_reference,
                                    :take_over);

-- name: bill_resolve
SELECT bill_resolve(:id, :choice, :actor, :detail, :min_pending_seconds, :token, :units,
                    :refund_reason);
