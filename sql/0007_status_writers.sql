-- Status writers: every change of refunds.status, and the bill transitions the matcher and the
-- refunder make, go through one plpgsql function per transition family. Each function checks
-- the current state itself (and the lease holder where the row is leased), sets the actor and
-- detail the audit trigger (bill_payments_log_transition) records, and returns whether it
-- applied: false means nothing changed. The catalogue (sql/queries/*.sql) calls only these.
--
-- A row is the caller's to change when nobody else holds a live lease on it: unleased, leased
-- to the caller, or the lease has run out.

-- The audit trigger reads these two settings; transaction-local, like every writer's.
CREATE FUNCTION billpay_set_actor(p_actor text, p_detail text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('billpay.actor', coalesce(p_actor, ''), true);
    PERFORM set_config('billpay.detail', coalesce(p_detail, ''), true);
END;
$$;

-- bill_mark_paid: the order's cNGN arrived (matched): pending_payment -> cngn_received, linked
-- to the incoming payment, paid at its ledger time.
CREATE FUNCTION bill_mark_paid(p_id bigint, p_incoming_payment_id bigint, p_paid_at timestamptz,
                               p_actor text, p_detail text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM billpay_set_actor(p_actor, p_detail);
    UPDATE bill_payments
       SET status = 'cngn_received', incoming_payment_id = p_incoming_payment_id,
           paid_at = p_paid_at, updated_at = now()
     WHERE id = p_id AND status = 'pending_payment' AND incoming_payment_id IS NULL;
    RETURN FOUND;
END;
$$;

-- bill_refund_amount_mismatch: a payment named the order with another amount. The payment is
-- linked to the order, which moves pending_payment -> refund_initiated with its refund row
-- (transition_bill_to_refund). Under the row lock the second step cannot fail after the first.
CREATE FUNCTION bill_refund_amount_mismatch(p_id bigint, p_incoming_payment_id bigint,
                                            p_actor text, p_detail text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM billpay_set_actor(p_actor, p_detail);
    UPDATE bill_payments SET incoming_payment_id = p_incoming_payment_id, updated_at = now()
     WHERE id = p_id AND status = 'pending_payment' AND incoming_payment_id IS NULL;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    RETURN transition_bill_to_refund(p_id, 'amount_mismatch');
END;
$$;

-- refund_mark_submitted: a signed envelope is stored before its first POST: pending ->
-- submitted; the bill, if any, refund_initiated -> refund_processing.
CREATE FUNCTION refund_mark_submitted(p_id bigint, p_xdr text, p_tx_hash text, p_sequence bigint,
                                      p_max_time timestamptz, p_actor text, p_detail text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_bill_id bigint;
BEGIN
    PERFORM billpay_set_actor(p_actor, p_detail);
    UPDATE refunds
       SET status = 'submitted', envelope_xdr = p_xdr, tx_hash = p_tx_hash, sequence = p_sequence,
           max_time = p_max_time, submit_attempts = 0, next_attempt_at = NULL, updated_at = now()
     WHERE id = p_id AND status = 'pending' AND envelope_xdr IS NULL
       AND (claimed_by IS NULL OR claimed_by = p_actor OR claimed_until < now())
    RETURNING bill_payment_id INTO v_bill_id;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF v_bill_id IS NOT NULL THEN
        UPDATE bill_payments SET status = 'refund_processing', updated_at = now()
         WHERE id = v_bill_id AND status = 'refund_initiated';
    END IF;
    RETURN true;
END;
$$;

-- refund_reset: forget an envelope that cannot be on the ledger: submitted -> pending (build
-- again at p_next_attempt_at) or held; the bill, if any, refund_processing -> refund_initiated.
CREATE FUNCTION refund_reset(p_id bigint, p_tx_hash text, p_status text, p_hold_reason text,
                             p_last_error text, p_result_codes jsonb,
                             p_next_attempt_at timestamptz, p_actor text, p_detail text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_bill_id bigint;
BEGIN
    IF p_status NOT IN ('pending', 'held') THEN
        RAISE EXCEPTION 'refund_reset: % is not pending or held', p_status
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM billpay_set_actor(p_actor, p_detail);
    UPDATE refunds
       SET status = p_status, hold_reason = p_hold_reason, envelope_xdr = NULL, tx_hash = NULL,
           sequence = NULL, max_time = NULL, submit_attempts = 0, last_error = p_last_error,
           result_codes = p_result_codes, next_attempt_at = p_next_attempt_at,
           claimed_by = NULL, claimed_until = NULL, updated_at = now()
     WHERE id = p_id AND status = 'submitted' AND tx_hash = p_tx_hash
       AND (claimed_by IS NULL OR claimed_by = p_actor OR claimed_until < now())
    RETURNING bill_payment_id INTO v_bill_id;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF v_bill_id IS NOT NULL THEN
        UPDATE bill_payments SET status = 'refund_initiated', updated_at = now()
         WHERE id = v_bill_id AND status = 'refund_processing';
    END IF;
    RETURN true;
END;
$$;

-- refund_park: a refund without an envelope is set aside: held (p_hold_reason says why) or
-- pending again at p_next_attempt_at. The lease is released.
CREATE FUNCTION refund_park(p_id bigint, p_status text, p_hold_reason text, p_last_error text,
                            p_result_codes jsonb, p_next_attempt_at timestamptz, p_actor text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF p_status NOT IN ('pending', 'held') THEN
        RAISE EXCEPTION 'refund_park: % is not pending or held', p_status
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM billpay_set_actor(p_actor, NULL);
    UPDATE refunds
       SET status = p_status, hold_reason = p_hold_reason, last_error = p_last_error,
           result_codes = p_result_codes, next_attempt_at = p_next_attempt_at,
           claimed_by = NULL, claimed_until = NULL, updated_at = now()
     WHERE id = p_id AND status = 'pending' AND envelope_xdr IS NULL
       AND (claimed_by IS NULL OR claimed_by = p_actor OR claimed_until < now());
    RETURN FOUND;
END;
$$;

-- refund_release: a held refund may go (operator decision, or its recheck time came): held ->
-- pending, due now.
CREATE FUNCTION refund_release(p_id bigint, p_actor text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM billpay_set_actor(p_actor, NULL);
    UPDATE refunds
       SET status = 'pending', hold_reason = NULL, next_attempt_at = NULL, updated_at = now()
     WHERE id = p_id AND status = 'held';
    RETURN FOUND;
END;
$$;

-- refund_release_due: refund_release for up to p_limit held refunds whose recheck time has come
-- and whose hold reason is one of p_reasons (SKIP LOCKED); returns the ids released.
CREATE FUNCTION refund_release_due(p_reasons text[], p_limit integer, p_actor text)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    FOR v_id IN
        SELECT id FROM refunds
         WHERE status = 'held' AND hold_reason = ANY(p_reasons) AND next_attempt_at <= now()
         ORDER BY next_attempt_at, id
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED
    LOOP
        IF refund_release(v_id, p_actor) THEN
            RETURN NEXT v_id;
        END IF;
    END LOOP;
END;
$$;

-- refund_mark_confirmed: the refund transaction is on the ledger. Stores the hash, confirms the
-- refund (once: a confirmed refund is never confirmed again with another hash) and moves its
-- bill, if any, to refunded. Replaces mark_refund_processed (0002).
CREATE FUNCTION refund_mark_confirmed(p_id bigint, p_tx_hash text, p_actor text, p_detail text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_bill_id bigint;
BEGIN
    PERFORM billpay_set_actor(p_actor, p_detail);
    UPDATE refunds
       SET status = 'confirmed', tx_hash = p_tx_hash, confirmed_at = now(), claimed_by = NULL,
           claimed_until = NULL, hold_reason = NULL, updated_at = now()
     WHERE id = p_id
       AND status IN ('pending', 'submitted', 'held')
       AND (tx_hash IS NULL OR tx_hash = p_tx_hash)
       AND (claimed_by IS NULL OR claimed_by = p_actor OR claimed_until < now())
    RETURNING bill_payment_id INTO v_bill_id;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF v_bill_id IS NOT NULL THEN
        UPDATE bill_payments SET status = 'refund_processing', updated_at = now()
         WHERE id = v_bill_id AND status = 'refund_initiated';
        UPDATE bill_payments
           SET status = 'refunded', refunded_at = now(), claimed_by = NULL, claimed_until = NULL,
               updated_at = now()
         WHERE id = v_bill_id AND status = 'refund_processing';
    END IF;
    RETURN true;
END;
$$;

DROP FUNCTION mark_refund_processed(bigint, text);

-- Read by nothing (code, tests, docs); bill_payments_stuck stays: the runbook points operators
-- at it.
DROP VIEW bill_payments_by_status;
