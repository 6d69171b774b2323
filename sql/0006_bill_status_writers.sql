-- The only writers of bill_payments.status for the processing steps: one function per
-- transition family. Each checks the expected state, the lease holder (when a worker is given)
-- and the open attempt where it matters, sets the actor for the audit trigger, and returns
-- whether it applied. The trigger and bill_state_transitions stay as the last line of defence.
-- The store calls these through one-line entries in sql/queries/bills.sql.
--
-- p_worker is the lease holder the caller claims to be. Only bill_wait and bill_give_up take a
-- NULL worker, meaning an operator acting by hand without a lease (reprocess-stuck); every
-- other writer is for a step holding a lease, and a NULL worker never matches.

-- Nothing calls it: steps schedule retries through bill_schedule_retry.
DROP FUNCTION IF EXISTS mark_bill_payment_ready_for_retry(bigint, integer);

CREATE FUNCTION billpay_set_actor(p_actor text, p_detail text) RETURNS void
LANGUAGE sql AS $$
    SELECT set_config('billpay.actor', coalesce(p_actor, ''), true),
           set_config('billpay.detail', coalesce(p_detail, ''), true);
$$;

-- A writer called for a state its family does not cover is a programming error: say so loudly.
CREATE FUNCTION bill_expect(p_writer text, p_state text, p_allowed text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT p_state = ANY(p_allowed) THEN
        RAISE EXCEPTION '% does not move a bill from %', p_writer, p_state
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END;
$$;

-- A claimed bill starts its step: cngn_received -> verifying_account (verify) or
-- retry_scheduled -> processing_bill (retry). The lease is kept for the rest of the step.
CREATE FUNCTION bill_begin_step(p_id bigint, p_from text, p_to text, p_worker text,
                                p_actor text, p_detail text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bill_expect('bill_begin_step', p_from || '->' || p_to,
                        ARRAY['cngn_received->verifying_account', 'retry_scheduled->processing_bill']);
    PERFORM billpay_set_actor(p_actor, p_detail);
    UPDATE bill_payments SET status = p_to, updated_at = now()
     WHERE id = p_id AND status = p_from AND claimed_by = p_worker;
    RETURN FOUND;
END;
$$;

-- verifying_account -> processing_bill: the account is good; paying gets a fresh retry budget.
CREATE FUNCTION bill_verified(p_id bigint, p_worker text, p_actor text, p_detail text,
                              p_verification jsonb)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM billpay_set_actor(p_actor, p_detail);
    UPDATE bill_payments
       SET status = 'processing_bill', verification = p_verification, retry_count = 0,
           last_error = NULL, last_error_class = NULL,
           claimed_by = NULL, claimed_until = NULL, updated_at = now()
     WHERE id = p_id AND status = 'verifying_account' AND claimed_by = p_worker;
    RETURN FOUND;
END;
$$;

-- A pay attempt is about to go out: remember its reference (and renew the lease for the call)
-- while the bill is still ours and has no open attempt. No state change.
CREATE FUNCTION bill_open_attempt(p_id bigint, p_worker text, p_provider text,
                                  p_attempt_reference text, p_lease_seconds integer)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    UPDATE bill_payments
       SET provider = p_provider, attempt_reference = p_attempt_reference,
           claimed_until = now() + make_interval(secs => p_lease_seconds)
     WHERE id = p_id AND status = 'processing_bill' AND claimed_by = p_worker
       AND attempt_reference IS NULL;
    RETURN FOUND;
END;
$$;

-- The bill waits for an answer: a verification to ask again (stays verifying_account), a
-- requery still pending (stays provider_processing), or a pay attempt left open (pending,
-- unknown, found open after a crash, an operator's requery: processing_bill ->
-- provider_processing, only with an open attempt). Counters, the next attempt time and the
-- error note are set and the lease is given back. NULL arguments keep the stored value, except
-- the error pair when p_set_error. A NULL worker is an operator acting without a lease.
-- Without a state change updated_at is left alone: it means "last state change", which the
-- stuck view measures (the guard trigger stamps it when the state does change).
CREATE FUNCTION bill_wait(p_id bigint, p_from text, p_worker text, p_actor text, p_detail text,
                          p_retry_count integer, p_requery_count integer,
                          p_next_attempt_at timestamptz, p_set_error boolean, p_last_error text,
                          p_last_error_class text, p_provider_reference text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bill_expect('bill_wait', p_from,
                        ARRAY['verifying_account', 'processing_bill', 'provider_processing']);
    PERFORM billpay_set_actor(p_actor, p_detail);
    UPDATE bill_payments
       SET status = CASE WHEN p_from = 'processing_bill' THEN 'provider_processing' ELSE status END,
           retry_count = coalesce(p_retry_count, retry_count),
           requery_count = coalesce(p_requery_count, requery_count),
           next_attempt_at = coalesce(p_next_attempt_at, next_attempt_at),
           last_error = CASE WHEN p_set_error THEN p_last_error ELSE last_error END,
           last_error_class = CASE WHEN p_set_error THEN p_last_error_class ELSE last_error_class END,
           provider_reference = coalesce(p_provider_reference, provider_reference),
           claimed_by = NULL, claimed_until = NULL
     WHERE id = p_id AND status = p_from
       AND (p_from <> 'processing_bill' OR attempt_reference IS NOT NULL)
       AND (p_worker IS NULL OR claimed_by = p_worker);
    RETURN FOUND;
END;
$$;

-- processing_bill / provider_processing -> completed: the provider delivered.
CREATE FUNCTION bill_complete(p_id bigint, p_from text, p_worker text, p_actor text,
                              p_detail text, p_token text, p_units text,
                              p_provider_reference text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bill_expect('bill_complete', p_from, ARRAY['processing_bill', 'provider_processing']);
    PERFORM billpay_set_actor(p_actor, p_detail);
    UPDATE bill_payments
       SET status = 'completed', token = p_token, units = p_units,
           provider_reference = coalesce(p_provider_reference, provider_reference),
           completed_at = now(), last_error = NULL, last_error_class = NULL,
           claimed_by = NULL, claimed_until = NULL, updated_at = now()
     WHERE id = p_id AND status = p_from AND claimed_by = p_worker;
    RETURN FOUND;
END;
$$;

-- processing_bill / provider_processing -> retry_scheduled: the attempt failed definitively
-- (it is closed: attempt_reference cleared) and another one is due at p_next_attempt_at.
CREATE FUNCTION bill_schedule_retry(p_id bigint, p_from text, p_worker text, p_actor text,
                                    p_detail text, p_retry_count integer,
                                    p_next_attempt_at timestamptz, p_last_error text,
                                    p_last_error_class text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bill_expect('bill_schedule_retry', p_from,
                        ARRAY['processing_bill', 'provider_processing']);
    PERFORM billpay_set_actor(p_actor, p_detail);
    UPDATE bill_payments
       SET status = 'retry_scheduled', retry_count = p_retry_count,
           next_attempt_at = p_next_attempt_at, attempt_reference = NULL,
           last_error = p_last_error, last_error_class = p_last_error_class,
           claimed_by = NULL, claimed_until = NULL, updated_at = now()
     WHERE id = p_id AND status = p_from AND claimed_by = p_worker;
    RETURN FOUND;
END;
$$;

-- Give up on paying and refund the cNGN: the one walk to refund, through the states the state
-- machine requires (verifying_account -> account_invalid when p_account_invalid, else
-- -> retry_scheduled -> provider_failed; processing_bill / provider_processing /
-- retry_scheduled -> provider_failed), then transition_bill_to_refund, which creates the refund
-- row. Only from states where no money can have moved to a provider, or the provider said it
-- did not. A NULL worker is an operator acting without a lease; p_set_error false keeps the
-- stored error note. Returns whether the refund was created.
CREATE FUNCTION bill_give_up(p_id bigint, p_from text, p_worker text, p_actor text,
                             p_detail text, p_account_invalid boolean, p_set_error boolean,
                             p_last_error text, p_last_error_class text, p_refund_reason text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_state text := p_from;
BEGIN
    PERFORM billpay_set_actor(p_actor, p_detail);
    -- The guard: the bill is where the caller saw it and (for a worker) still leased to it.
    PERFORM 1 FROM bill_payments
     WHERE id = p_id AND status = p_from AND (p_worker IS NULL OR claimed_by = p_worker)
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF v_state = 'verifying_account' THEN
        v_state := CASE WHEN p_account_invalid THEN 'account_invalid' ELSE 'retry_scheduled' END;
        UPDATE bill_payments
           SET status = v_state, claimed_by = NULL, claimed_until = NULL, updated_at = now()
         WHERE id = p_id;
    END IF;
    IF v_state IN ('processing_bill', 'provider_processing', 'retry_scheduled') THEN
        v_state := 'provider_failed';
        UPDATE bill_payments
           SET status = v_state, attempt_reference = NULL, claimed_by = NULL,
               claimed_until = NULL, updated_at = now()
         WHERE id = p_id;
    END IF;
    PERFORM bill_expect('bill_give_up', v_state, ARRAY['account_invalid', 'provider_failed']);
    IF p_set_error THEN
        UPDATE bill_payments SET last_error = p_last_error, last_error_class = p_last_error_class
         WHERE id = p_id;
    END IF;
    PERFORM billpay_set_actor(p_actor, p_refund_reason);
    RETURN transition_bill_to_refund(p_id, p_refund_reason);
END;
$$;

-- A bill found waiting in account_invalid / provider_failed (a crash between deciding and
-- refunding), or a pending order whose payment cannot be matched: refund it.
CREATE FUNCTION bill_send_to_refund(p_id bigint, p_actor text, p_reason text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM billpay_set_actor(p_actor, p_reason);
    RETURN transition_bill_to_refund(p_id, p_reason);
END;
$$;

-- pending_payment past expires_at -> expired, a batch at a time; returns the references.
CREATE FUNCTION bill_expire_due(p_limit integer, p_actor text)
RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM billpay_set_actor(p_actor, 'no payment before expiry');
    RETURN QUERY
    WITH due AS (
        SELECT id FROM queue_expire_orders ORDER BY expires_at LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE bill_payments b SET status = 'expired', updated_at = now()
      FROM due WHERE b.id = due.id AND b.status = 'pending_payment'
    RETURNING b.reference;
END;
$$;

-- An operator requeues a bill: the lease is given back and a waiting bill is due now. No state
-- change; an audit note says who did it.
CREATE FUNCTION bill_requeue(p_id bigint, p_actor text, p_detail text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    UPDATE bill_payments
       SET claimed_by = NULL, claimed_until = NULL,
           next_attempt_at = CASE WHEN status IN ('provider_processing', 'retry_scheduled',
                                                  'verifying_account')
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
