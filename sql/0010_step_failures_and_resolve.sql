-- A bill step that raises never loops the bill, reprocess-stuck claims a bill before acting on
-- it, and an operator can resolve a bill stuck at a provider (issue 12, defects 1, 7 and 8).

-- Consecutive failed steps (an exception, not a provider's answer) and the last one's masked
-- text. A successful step resets both (billpay.bills.context.persist).
ALTER TABLE bill_payments
    ADD COLUMN step_failures integer NOT NULL DEFAULT 0,
    ADD COLUMN step_error text;

-- A pay step that failed before its attempt was committed waits its backoff like every other
-- step. A bill reaches processing_bill with next_attempt_at NULL or in the past, so this
-- changes nothing else. The columns stay those of bill_payments (CREATE OR REPLACE may only
-- add the new ones at the end).
CREATE OR REPLACE VIEW queue_pay_bills AS
    SELECT * FROM bill_payments
    WHERE status = 'processing_bill' AND (claimed_until IS NULL OR claimed_until < now())
      AND (next_attempt_at IS NULL OR next_attempt_at <= now());

-- The same in cngn_received: sql/0002's branch for it did not read next_attempt_at, so a bill
-- whose first step raised there was verified again every tick. One branch per state, as in
-- sql/0002, so each can use its partial index.
CREATE OR REPLACE VIEW queue_verify_accounts AS
    SELECT * FROM bill_payments
    WHERE (status = 'cngn_received' AND (claimed_until IS NULL OR claimed_until < now())
           AND (next_attempt_at IS NULL OR next_attempt_at <= now()))
       OR (status = 'verifying_account' AND (claimed_until IS NULL OR claimed_until < now())
           AND (next_attempt_at IS NULL OR next_attempt_at <= now()));

-- The step a worker ran on its claimed bill raised: count it, keep the (masked) error, make the
-- bill due again only at p_next_attempt_at and give the lease back. A pay attempt already
-- committed may have been charged: the bill moves on to provider_processing, so it is
-- requeried under the same reference, never paid again. Returns the new failure count, or NULL
-- when the bill is no longer this worker's (a lease taken over writes nothing).
CREATE FUNCTION bill_step_failed(p_id bigint, p_worker text, p_stage text, p_error text,
                                 p_next_attempt_at timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_bill bill_payments%ROWTYPE;
    v_to text;
    v_detail text;
BEGIN
    SELECT * INTO v_bill FROM bill_payments
     WHERE id = p_id AND claimed_by = p_worker
       AND status IN ('cngn_received', 'verifying_account', 'processing_bill',
                      'provider_processing', 'retry_scheduled')
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    v_to := CASE WHEN v_bill.status = 'processing_bill' AND v_bill.attempt_reference IS NOT NULL
                 THEN 'provider_processing' ELSE v_bill.status END;
    v_detail := format('step %s failed (%s in a row): %s', p_stage, v_bill.step_failures + 1,
                       p_error);
    IF v_to <> v_bill.status THEN
        v_detail := v_detail || format('; open attempt %s: requery, never pay again',
                                       v_bill.attempt_reference);
    END IF;
    PERFORM billpay_set_actor(p_worker, v_detail);
    UPDATE bill_payments
       SET status = v_to, step_failures = step_failures + 1, step_error = p_error,
           next_attempt_at = p_next_attempt_at, claimed_by = NULL, claimed_until = NULL
     WHERE id = p_id;
    IF v_to = v_bill.status THEN  -- no state change, so no trigger event: write the note here
        INSERT INTO bill_payment_events (bill_payment_id, from_state, to_state, actor, detail)
        VALUES (p_id, v_bill.status, v_bill.status, p_worker, v_detail);
    END IF;
    RETURN v_bill.step_failures + 1;
END;
$$;

-- A step succeeded: the streak of failures is over (called only when there was one).
CREATE FUNCTION bill_step_succeeded(p_id bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE bill_payments SET step_failures = 0, step_error = NULL
     WHERE id = p_id AND step_failures > 0;
    RETURN FOUND;
END;
$$;

-- An operator's worker claims one bill for an action planned on it (reprocess-stuck), the way
-- the pipeline claims: only when no live lease is held by someone else, and only while the bill
-- is still in the state, with the open attempt, the plan was made for. p_take_over: a requeue,
-- whose purpose is to take a lease back from a worker that went away (safe: every writer checks
-- the lease holder, so the old holder writes nothing after). Returns the row, or nothing (the
-- caller reads the bill again to say why).
CREATE FUNCTION bill_claim_as_planned(p_id bigint, p_worker text, p_lease_seconds integer,
                                      p_status text, p_attempt_reference text,
                                      p_take_over boolean)
RETURNS SETOF bill_payments LANGUAGE sql AS $$
    UPDATE bill_payments
       SET claimed_by = p_worker, claimed_until = now() + make_interval(secs => p_lease_seconds)
     WHERE id = p_id AND status = p_status
       AND attempt_reference IS NOT DISTINCT FROM p_attempt_reference
       AND (p_take_over OR claimed_until IS NULL OR claimed_until < now()
            OR claimed_by = p_worker)
    RETURNING *;
$$;

-- The operator's way out of provider_processing when the provider never answers definitively:
-- 'delivered' (the provider confirmed it out of band: completed with the token and units, and
-- the customer is notified by the completion trigger like any completion) or 'failed' (the
-- provider confirmed nothing was delivered: provider_failed, then refund). Only for a bill
-- pending at the provider for longer than p_min_pending_seconds and not leased by a live
-- worker (a requery in flight decides first). p_detail is the audit text (choice, masked
-- token, note); the actor is the operator. Returns NULL when applied, else why not.
CREATE FUNCTION bill_resolve(p_id bigint, p_choice text, p_actor text, p_detail text,
                             p_min_pending_seconds integer, p_token text, p_units text,
                             p_refund_reason text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_bill bill_payments%ROWTYPE;
BEGIN
    PERFORM bill_expect('bill_resolve', p_choice, ARRAY['delivered', 'failed']);
    SELECT * INTO v_bill FROM bill_payments WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'no such bill';
    ELSIF v_bill.status <> 'provider_processing' THEN
        RETURN format('the bill is %s, not provider_processing', v_bill.status);
    ELSIF v_bill.updated_at > now() - make_interval(secs => p_min_pending_seconds) THEN
        RETURN format('pending since %s: wait until it has been pending %s seconds',
                      v_bill.updated_at, p_min_pending_seconds);
    ELSIF v_bill.claimed_until >= now() THEN
        RETURN format('leased by %s until %s (a requery is running): try again after it',
                      v_bill.claimed_by, v_bill.claimed_until);
    END IF;
    PERFORM billpay_set_actor(p_actor, p_detail);
    -- The open pay attempt ends with the operator's word (its answer never came), so history
    -- and reconciliation agree with the bill. An attempt that did record an answer keeps it.
    UPDATE provider_attempts
       SET finished_at = clock_timestamp(), outcome = 'operator_' || p_choice,
           latency_ms = (extract(epoch FROM clock_timestamp() - started_at) * 1000)::int
     WHERE bill_payment_id = p_id AND operation = 'pay'
       AND reference = v_bill.attempt_reference AND finished_at IS NULL;
    IF p_choice = 'delivered' THEN
        UPDATE bill_payments
           SET status = 'completed', token = p_token, units = p_units, completed_at = now(),
               last_error = NULL, last_error_class = NULL, step_failures = 0, step_error = NULL,
               claimed_by = NULL, claimed_until = NULL, updated_at = now()
         WHERE id = p_id;
        RETURN NULL;
    END IF;
    UPDATE bill_payments
       SET status = 'provider_failed', attempt_reference = NULL, last_error = p_detail,
           last_error_class = 'operator', claimed_by = NULL, claimed_until = NULL,
           updated_at = now()
     WHERE id = p_id;
    PERFORM billpay_set_actor(p_actor, p_refund_reason);
    IF NOT transition_bill_to_refund(p_id, p_refund_reason) THEN
        RAISE EXCEPTION 'bill % could not be sent to refund', v_bill.reference;
    END IF;
    RETURN NULL;
END;
$$;

-- An operator's requeue also makes a processing_bill bill due now (a pay step that raised
-- waits its backoff in processing_bill since this migration). Otherwise as in 0006.
CREATE OR REPLACE FUNCTION bill_requeue(p_id bigint, p_actor text, p_detail text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    UPDATE bill_payments
       SET claimed_by = NULL, claimed_until = NULL,
           next_attempt_at = CASE WHEN status IN ('provider_processing', 'retry_scheduled',
                                                  'verifying_account', 'processing_bill')
                                  THEN now() ELSE next_attempt_at END
     WHERE id = p_id
    RETURNING status INTO v_status;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO bill_payment_events (bill_payment_id, from_state, to_state, actor, detail)
    VALUES (p_id, v_status, v_status, p_actor, p_detail);
    RETURN true;
END;
$$;
