-- Status writers: every change of refunds.status, and the bill transitions the matcher and the
-- refunder make, go through one plpgsql function per transition family. Each function checks
-- the current state itself (and the lease holder where the row is leased), sets the actor and
-- detail the audit trigger (bill_payments_log_transition) records, and returns whether it
-- applied: false means nothing changed. The catalogue (sql/queries/*.sql) calls only these.
--
-- A row is the caller's to change when nobody else holds a live lease on it: unleased, leased
-- to the caller, or the lease has run out.

-- billpay_set_actor (sql/0006) attributes the audit events of each writer.

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

-- A refund row is the caller's to change when no other worker holds a live lease on it.
CREATE FUNCTION refund_lease_free(p_claimed_by text, p_claimed_until timestamptz, p_actor text)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT p_claimed_by IS NULL OR p_claimed_by = p_actor OR p_claimed_until < now()
$$;

-- bill_follow_refund: when a refund moved (p_refund_moved), its bill, if any, takes one step
-- of refund_initiated -> refund_processing -> refunded (or back). Returns p_refund_moved.
CREATE FUNCTION bill_follow_refund(p_refund_moved boolean, p_bill_id bigint, p_from text,
                                   p_to text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_done boolean := p_to = 'refunded';
BEGIN
    IF p_refund_moved THEN
        UPDATE bill_payments
           SET status = p_to, updated_at = now(),
               refunded_at = CASE WHEN v_done THEN now() ELSE refunded_at END,
               claimed_by = CASE WHEN v_done THEN NULL ELSE claimed_by END,
               claimed_until = CASE WHEN v_done THEN NULL ELSE claimed_until END
         WHERE id = p_bill_id AND status = p_from;
    END IF;
    RETURN p_refund_moved;
END;
$$;

-- A refund set aside goes to pending or held, never elsewhere (a caller's mistake: raise).
CREATE FUNCTION refund_check_set_aside(p_status text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_status NOT IN ('pending', 'held') THEN
        RAISE EXCEPTION 'a refund set aside is pending or held, not %', p_status
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
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
       AND refund_lease_free(claimed_by, claimed_until, p_actor)
    RETURNING bill_payment_id INTO v_bill_id;
    RETURN bill_follow_refund(FOUND, v_bill_id, 'refund_initiated', 'refund_processing');
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
    PERFORM refund_check_set_aside(p_status);
    PERFORM billpay_set_actor(p_actor, p_detail);
    UPDATE refunds
       SET status = p_status, hold_reason = p_hold_reason, envelope_xdr = NULL, tx_hash = NULL,
           sequence = NULL, max_time = NULL, submit_attempts = 0, last_error = p_last_error,
           result_codes = p_result_codes, next_attempt_at = p_next_attempt_at,
           claimed_by = NULL, claimed_until = NULL, updated_at = now()
     WHERE id = p_id AND refund_lease_free(claimed_by, claimed_until, p_actor)
       AND status = 'submitted' AND tx_hash = p_tx_hash
    RETURNING bill_payment_id INTO v_bill_id;
    RETURN bill_follow_refund(FOUND, v_bill_id, 'refund_processing', 'refund_initiated');
END;
$$;

-- refund_park: set a refund without an envelope aside, lease released: held, or pending later.
CREATE FUNCTION refund_park(p_id bigint, p_status text, p_hold_reason text, p_last_error text,
                            p_result_codes jsonb, p_next_attempt_at timestamptz, p_actor text)
RETURNS boolean LANGUAGE sql AS $$
    SELECT refund_check_set_aside(p_status), billpay_set_actor(p_actor, NULL);
    WITH parked AS (
        UPDATE refunds
           SET status = p_status, hold_reason = p_hold_reason, last_error = p_last_error,
               result_codes = p_result_codes, next_attempt_at = p_next_attempt_at,
               claimed_by = NULL, claimed_until = NULL, updated_at = now()
         WHERE id = p_id AND status = 'pending' AND envelope_xdr IS NULL
           AND refund_lease_free(claimed_by, claimed_until, p_actor)
        RETURNING id
    )
    SELECT count(*) = 1 FROM parked;
$$;

-- refund_release: a held refund may go (an operator decided, or its recheck time came): held
-- -> pending, due now.
CREATE FUNCTION refund_release(p_id bigint, p_actor text)
RETURNS boolean LANGUAGE sql AS $$
    SELECT billpay_set_actor(p_actor, NULL);
    WITH released AS (
        UPDATE refunds
           SET status = 'pending', hold_reason = NULL, next_attempt_at = NULL, updated_at = now()
         WHERE id = p_id AND status = 'held'
        RETURNING id
    )
    SELECT count(*) = 1 FROM released;
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
    v_confirmed boolean;
BEGIN
    PERFORM billpay_set_actor(p_actor, p_detail);
    UPDATE refunds
       SET status = 'confirmed', tx_hash = p_tx_hash, confirmed_at = now(), claimed_by = NULL,
           claimed_until = NULL, hold_reason = NULL, updated_at = now()
     WHERE id = p_id
       AND status IN ('pending', 'submitted', 'held')
       AND (tx_hash IS NULL OR tx_hash = p_tx_hash)
       AND refund_lease_free(claimed_by, claimed_until, p_actor)
    RETURNING bill_payment_id INTO v_bill_id;
    v_confirmed := FOUND;
    PERFORM bill_follow_refund(v_confirmed, v_bill_id, 'refund_initiated', 'refund_processing');
    RETURN bill_follow_refund(v_confirmed, v_bill_id, 'refund_processing', 'refunded');
END;
$$;

DROP FUNCTION mark_refund_processed(bigint, text);

-- Read by nothing (code, tests, docs); bill_payments_stuck stays: the runbook points operators
-- at it.
DROP VIEW bill_payments_by_status;
