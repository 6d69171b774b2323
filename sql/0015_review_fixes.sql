-- Review fixes for issue 12 (sql/0010).

-- A step that raised in cngn_received waits its backoff like every other state: the
-- cngn_received branch of queue_verify_accounts did not read next_attempt_at, so such a bill
-- was verified again every tick. A bill reaches cngn_received with next_attempt_at NULL (or in
-- the past), so nothing else changes.
-- One branch per state, as in sql/0002, so each can use its partial index.
CREATE OR REPLACE VIEW queue_verify_accounts AS
    SELECT * FROM bill_payments
    WHERE (status = 'cngn_received' AND (claimed_until IS NULL OR claimed_until < now())
           AND (next_attempt_at IS NULL OR next_attempt_at <= now()))
       OR (status = 'verifying_account' AND (claimed_until IS NULL OR claimed_until < now())
           AND (next_attempt_at IS NULL OR next_attempt_at <= now()));

-- bill_resolve as in sql/0010, and it closes the open pay attempt.
CREATE OR REPLACE FUNCTION bill_resolve(p_id bigint, p_choice text, p_actor text, p_detail text,
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
