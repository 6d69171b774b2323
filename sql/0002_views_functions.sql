-- Queue views (what each stage batch-selects: claimable now, lease respected), the stuck view,
-- monitoring views and the guarded helper functions.

-- A row is claimable when nobody holds a live lease on it.
CREATE VIEW queue_verify_accounts AS
    SELECT * FROM bill_payments
    WHERE (status = 'cngn_received' AND (claimed_until IS NULL OR claimed_until < now()))
       OR (status = 'verifying_account' AND (claimed_until IS NULL OR claimed_until < now())
           AND (next_attempt_at IS NULL OR next_attempt_at <= now()));

CREATE VIEW queue_pay_bills AS
    SELECT * FROM bill_payments
    WHERE status = 'processing_bill' AND (claimed_until IS NULL OR claimed_until < now());

CREATE VIEW queue_requery_bills AS
    SELECT * FROM bill_payments
    WHERE status = 'provider_processing' AND next_attempt_at <= now()
      AND (claimed_until IS NULL OR claimed_until < now());

CREATE VIEW queue_retry_bills AS
    SELECT * FROM bill_payments
    WHERE status = 'retry_scheduled' AND next_attempt_at <= now()
      AND (claimed_until IS NULL OR claimed_until < now());

CREATE VIEW queue_bills_to_refund AS
    SELECT * FROM bill_payments
    WHERE status IN ('account_invalid', 'provider_failed')
      AND (claimed_until IS NULL OR claimed_until < now());

CREATE VIEW queue_expire_orders AS
    SELECT * FROM bill_payments
    WHERE status = 'pending_payment' AND expires_at < now();

CREATE VIEW queue_match_payments AS
    SELECT * FROM incoming_payments WHERE match_outcome IS NULL;

CREATE VIEW queue_refunds AS
    SELECT * FROM refunds
    WHERE status IN ('pending', 'submitted')
      AND (next_attempt_at IS NULL OR next_attempt_at <= now())
      AND (claimed_until IS NULL OR claimed_until < now());

CREATE VIEW queue_notifications AS
    SELECT * FROM notifications
    WHERE status = 'pending' AND next_attempt_at <= now()
      AND (claimed_until IS NULL OR claimed_until < now());

-- Non-terminal bills nobody has moved for 15 minutes (an unpaid order waits until it expires).
CREATE VIEW bill_payments_stuck AS
    SELECT id, reference, bill_type, biller, status, provider, attempt_reference, retry_count,
           requery_count, last_error, last_error_class, claimed_by, claimed_until, next_attempt_at,
           updated_at, now() - updated_at AS stuck_for
    FROM bill_payments
    WHERE status NOT IN ('completed', 'refunded', 'expired')
      AND updated_at < now() - interval '15 minutes'
      AND NOT (status = 'pending_payment' AND expires_at >= now());

CREATE VIEW bill_payments_by_status AS
    SELECT status,
           count(*)                 AS bills,
           sum(amount_kobo)         AS amount_kobo,
           sum(amount_cngn)         AS amount_cngn,
           min(updated_at)          AS oldest_update
    FROM bill_payments
    GROUP BY status;

-- paid = cNGN received for the order; settled = completed + refunded (among paid orders).
CREATE VIEW bill_payments_success_rate AS
    SELECT bill_type,
           biller,
           count(*) FILTER (WHERE paid_at IS NOT NULL)                         AS paid,
           count(*) FILTER (WHERE status = 'completed')                        AS completed,
           count(*) FILTER (WHERE status = 'refunded' AND paid_at IS NOT NULL) AS refunded,
           count(*) FILTER (WHERE paid_at IS NOT NULL
                            AND status NOT IN ('completed', 'refunded'))       AS in_flight,
           round(count(*) FILTER (WHERE status = 'completed')::numeric
                 / nullif(count(*) FILTER (WHERE status = 'completed'
                          OR (status = 'refunded' AND paid_at IS NOT NULL)), 0), 4) AS success_rate,
           round(count(*) FILTER (WHERE status = 'refunded' AND paid_at IS NOT NULL)::numeric
                 / nullif(count(*) FILTER (WHERE status = 'completed'
                          OR (status = 'refunded' AND paid_at IS NOT NULL)), 0), 4) AS refund_rate,
           coalesce(sum(amount_cngn) FILTER (WHERE paid_at IS NOT NULL), 0)    AS cngn_volume
    FROM bill_payments
    GROUP BY bill_type, biller;

CREATE VIEW provider_performance AS
    SELECT provider,
           operation,
           count(*)                                        AS calls,
           count(*) FILTER (WHERE outcome = 'success')     AS success,
           count(*) FILTER (WHERE outcome = 'pending')     AS pending,
           count(*) FILTER (WHERE outcome = 'failed')      AS failed,
           count(*) FILTER (WHERE outcome = 'unknown')     AS unknown,
           round(count(*) FILTER (WHERE outcome = 'success')::numeric
                 / nullif(count(*) FILTER (WHERE outcome IS NOT NULL), 0), 4) AS success_rate,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)  AS latency_p50_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS latency_p95_ms,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) AS latency_p99_ms
    FROM provider_attempts
    WHERE finished_at IS NOT NULL
    GROUP BY provider, operation;

-- mark_bill_payment_ready_for_retry: an attempt failed transiently; schedule the next one.
-- Only from the states that make provider calls; the lease is released.
CREATE FUNCTION mark_bill_payment_ready_for_retry(p_id bigint, p_backoff_seconds integer)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    UPDATE bill_payments
       SET status = 'retry_scheduled',
           retry_count = retry_count + 1,
           next_attempt_at = now() + make_interval(secs => greatest(p_backoff_seconds, 0)),
           claimed_by = NULL,
           claimed_until = NULL,
           updated_at = now()
     WHERE id = p_id
       AND status IN ('verifying_account', 'processing_bill', 'provider_processing');
    RETURN FOUND;
END;
$$;

-- transition_bill_to_refund: decide a refund of the cNGN this bill received. Only from states
-- where no money can have moved to a provider, or the provider said definitively it did not
-- (account_invalid, provider_failed), or a pending order whose payment did not match. Creates
-- the refund row in the same statement; one refund per incoming payment.
CREATE FUNCTION transition_bill_to_refund(p_id bigint, p_reason text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_bill bill_payments%ROWTYPE;
BEGIN
    UPDATE bill_payments
       SET status = 'refund_initiated',
           refund_reason = p_reason,
           claimed_by = NULL,
           claimed_until = NULL,
           next_attempt_at = NULL,
           updated_at = now()
     WHERE id = p_id
       AND incoming_payment_id IS NOT NULL
       AND status IN ('account_invalid', 'provider_failed', 'pending_payment')
    RETURNING * INTO v_bill;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO refunds (incoming_payment_id, bill_payment_id, destination, amount, memo, reason)
    SELECT ip.id, v_bill.id, coalesce(ip.from_muxed, ip.from_account), ip.amount,
           'REFUND-' || v_bill.reference, p_reason
      FROM incoming_payments ip
     WHERE ip.id = v_bill.incoming_payment_id
    ON CONFLICT (incoming_payment_id) DO NOTHING;
    RETURN true;
END;
$$;

-- mark_refund_processed: the refund transaction is on the ledger. Stores the hash, confirms the
-- refund (once: a confirmed refund is never confirmed again with another hash) and moves its
-- bill, if any, to refunded.
CREATE FUNCTION mark_refund_processed(p_refund_id bigint, p_tx_hash text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_bill_id bigint;
BEGIN
    UPDATE refunds
       SET status = 'confirmed',
           tx_hash = p_tx_hash,
           confirmed_at = now(),
           claimed_by = NULL,
           claimed_until = NULL,
           hold_reason = NULL,
           updated_at = now()
     WHERE id = p_refund_id
       AND status IN ('pending', 'submitted', 'held')
       AND (tx_hash IS NULL OR tx_hash = p_tx_hash)
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
