-- Provider webhooks in and VTpass reversals (issue 13, items 5 and 6).
--
-- A webhook is a hint: bill_provider_hint only makes a requery (or a delivered bill's reversal
-- re-check) due now; it never changes a state or moves money. The requery decides.
-- A delivered VTpass bill can be reversed later (code 040 / status reversed): the new state
-- `reversed` (completed -> reversed -> refund_initiated) refunds its cNGN through the one refund
-- writer, transition_bill_to_refund, so still at most once per incoming payment.

-- --- the state machine: completed -> reversed -> refund_initiated ---------------------------

-- Mirrors billpay/states.py (tests/integration/test_state_machine.py proves it).
ALTER TABLE bill_payments DROP CONSTRAINT bill_payments_status_check;
ALTER TABLE bill_payments ADD CONSTRAINT bill_payments_status_check CHECK (status IN (
    'pending_payment', 'cngn_received', 'verifying_account', 'account_invalid',
    'processing_bill', 'provider_processing', 'completed', 'retry_scheduled',
    'provider_failed', 'refund_initiated', 'refund_processing', 'refunded', 'expired',
    'reversed'));

INSERT INTO bill_state_transitions (from_state, to_state) VALUES
    ('completed', 'reversed'),
    ('reversed', 'refund_initiated');

-- --- the one re-check of a delivered VTpass bill ----------------------------------------------

ALTER TABLE bill_payments
    -- The re-check is over (still delivered, reversed, or given up): never again, unless a
    -- reversal webhook names the bill.
    ADD COLUMN reversal_checked_at timestamptz,
    -- When the re-check is due, once a webhook or a failed try set it; NULL: completed_at plus
    -- BILLPAY_REVERSAL_RECHECK_SECONDS (the claim query adds it: the view has no settings).
    ADD COLUMN reversal_check_at timestamptz,
    ADD COLUMN reversal_checks integer NOT NULL DEFAULT 0,
    -- Counts reversal webhooks: a re-check whose claim saw another count was asked before
    -- the latest webhook, so it cannot close the check (it asks again a minute later).
    ADD COLUMN reversal_hints integer NOT NULL DEFAULT 0,
    ADD COLUMN reversed_at timestamptz,
    -- When a webhook last made a pending bill's requery due: hints bring a requery forward at
    -- most once a minute (the route is open to anyone who knows a reference).
    ADD COLUMN hinted_at timestamptz;

-- Bills delivered before re-checks existed and more than a day ago are not re-checked: a
-- reversal of those reaches us only by its webhook (which reopens the check).
UPDATE bill_payments SET reversal_checked_at = now()
 WHERE status = 'completed' AND completed_at < now() - interval '1 day';

-- Only bills still waiting for their re-check are in the index, so it stays small.
CREATE INDEX bill_payments_q_reversal_recheck ON bill_payments (id)
    WHERE status = 'completed' AND provider = 'vtpass' AND reversal_checked_at IS NULL;

CREATE VIEW queue_reversal_rechecks AS
    SELECT * FROM bill_payments
    WHERE status = 'completed' AND provider = 'vtpass' AND reversal_checked_at IS NULL
      AND (claimed_until IS NULL OR claimed_until < now());

-- The re-check found the bill still delivered, or gave up after its tries (p_detail says
-- which), for the lease holder. p_hints is reversal_hints as the claim read it:
--   * a reversal webhook came while we asked (the count moved): the answer predates it, so
--     the check stays open and is due again in a minute;
--   * an early check (a webhook made it due before completed_at + p_delay_seconds): the bill
--     is delivered so far, and the scheduled re-check still runs (a forged early hint must not
--     use up the one that catches a reversal VTpass never announced), with fresh tries;
--   * otherwise the re-check is over, once, with an audit note.
-- The lease is given back in every case.
CREATE FUNCTION bill_reversal_checked(p_id bigint, p_worker text, p_hints integer,
                                      p_delay_seconds integer, p_actor text, p_detail text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_bill bill_payments%ROWTYPE;
BEGIN
    SELECT * INTO v_bill FROM bill_payments
     WHERE id = p_id AND status = 'completed' AND claimed_by = p_worker
       AND reversal_checked_at IS NULL
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF v_bill.reversal_hints <> p_hints THEN
        UPDATE bill_payments
           SET reversal_check_at = now() + interval '1 minute', claimed_by = NULL,
               claimed_until = NULL
         WHERE id = p_id;
        RETURN true;
    END IF;
    IF p_delay_seconds > 0
       AND v_bill.completed_at + make_interval(secs => p_delay_seconds) > now() THEN
        UPDATE bill_payments
           SET reversal_check_at = NULL, reversal_checks = 0, claimed_by = NULL,
               claimed_until = NULL
         WHERE id = p_id;
        INSERT INTO bill_payment_events (bill_payment_id, from_state, to_state, actor, detail)
        VALUES (p_id, 'completed', 'completed', p_actor,
                'early ' || p_detail || '; the scheduled re-check still runs');
        RETURN true;
    END IF;
    UPDATE bill_payments
       SET reversal_checked_at = now(), reversal_check_at = NULL,
           reversal_checks = reversal_checks + 1, claimed_by = NULL, claimed_until = NULL
     WHERE id = p_id;
    INSERT INTO bill_payment_events (bill_payment_id, from_state, to_state, actor, detail)
    VALUES (p_id, 'completed', 'completed', p_actor, p_detail);
    RETURN true;
END;
$$;

-- The re-check could not tell (the provider did not answer, or answered something odd): try
-- again at p_next_check_at (within a minute if a reversal webhook came meanwhile); the lease
-- is given back. No state change, no event.
CREATE FUNCTION bill_reversal_check_later(p_id bigint, p_worker text, p_hints integer,
                                          p_next_check_at timestamptz)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    UPDATE bill_payments
       SET reversal_check_at = CASE WHEN reversal_hints <> p_hints
                                    THEN least(p_next_check_at, now() + interval '1 minute')
                                    ELSE p_next_check_at END,
           reversal_checks = reversal_checks + 1,
           claimed_by = NULL, claimed_until = NULL
     WHERE id = p_id AND status = 'completed' AND claimed_by = p_worker
       AND reversal_checked_at IS NULL;
    RETURN FOUND;
END;
$$;

-- --- the reversal: completed -> reversed -> refund_initiated, in one transaction ---------------

-- The one refund writer, now also from `reversed`: the provider took the delivery back (and
-- refunded our float), so the customer's cNGN goes back. Otherwise as in sql/0002: only from
-- states where no money can be with a provider, one refund per incoming payment.
CREATE OR REPLACE FUNCTION transition_bill_to_refund(p_id bigint, p_reason text)
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
       AND status IN ('account_invalid', 'provider_failed', 'pending_payment', 'reversed')
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

-- A requery of a delivered bill said the provider reversed it: completed -> reversed ->
-- refund_initiated with its refund row, only for the lease holder and only from completed (a
-- replayed reversal finds the bill refunding and changes nothing). The notification trigger
-- below tells the customer and the operators. A completed bill always has its payment; if
-- not, nothing is written (raise: the transaction rolls back and the bill stays completed).
CREATE FUNCTION bill_reverse(p_id bigint, p_worker text, p_actor text, p_detail text,
                             p_reason text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM billpay_set_actor(p_actor, p_detail);
    UPDATE bill_payments
       SET status = 'reversed', refund_reason = p_reason, reversed_at = now(),
           reversal_checked_at = now(), reversal_check_at = NULL,
           reversal_checks = reversal_checks + 1, updated_at = now()
     WHERE id = p_id AND status = 'completed' AND claimed_by = p_worker;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM billpay_set_actor(p_actor, p_reason);
    IF NOT transition_bill_to_refund(p_id, p_reason) THEN
        RAISE EXCEPTION 'reversed bill % has no payment to refund', p_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN true;
END;
$$;

-- --- webhooks: a hint, never a state change -------------------------------------------------

-- A provider's webhook named pay attempt p_reference. Returns what it did:
--   'requery_due'   the bill waits in provider_processing on this very attempt: its requery
--                   is brought forward to now (or to a minute after the last hint's: a flood
--                   of forged hints costs at most one extra requery a minute)
--   'recheck_due'   p_reversal, and the bill is a completed VTpass bill delivered by this
--                   attempt: its reversal re-check is due now, reopened with fresh tries if it
--                   was over (no sooner than a minute after it ended); a re-check in flight
--                   sees the hint count move and asks again
--   'closed_attempt' the attempt is no longer the bill's open one (failed and retried, say)
--   'no_action'     anything else (already completed, refunding, ...)
--   'unknown_reference' no pay attempt of ours has this reference
-- Only next_attempt_at / the re-check time move, and never later: a replayed or forged
-- webhook costs at most one requery a minute, whose answer decides. A hint is never dropped:
-- at worst deferred by that minute.
CREATE FUNCTION bill_provider_hint(p_provider text, p_reference text, p_reversal boolean,
                                   p_actor text, p_detail text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_bill bill_payments%ROWTYPE;
    v_due timestamptz;
BEGIN
    SELECT b.* INTO v_bill
      FROM provider_attempts a JOIN bill_payments b ON b.id = a.bill_payment_id
     WHERE a.provider = p_provider AND a.reference = p_reference AND a.operation = 'pay'
       FOR UPDATE OF b;
    IF NOT FOUND THEN
        RETURN 'unknown_reference';
    END IF;
    IF v_bill.attempt_reference IS DISTINCT FROM p_reference
       OR v_bill.provider IS DISTINCT FROM p_provider THEN
        RETURN 'closed_attempt';
    END IF;
    IF v_bill.status = 'provider_processing' THEN
        v_due := greatest(now(), coalesce(v_bill.hinted_at + interval '1 minute', now()));
        UPDATE bill_payments SET next_attempt_at = v_due, hinted_at = v_due
         WHERE id = v_bill.id AND (next_attempt_at IS NULL OR next_attempt_at > v_due);
        IF FOUND THEN
            INSERT INTO bill_payment_events (bill_payment_id, from_state, to_state, actor, detail)
            VALUES (v_bill.id, v_bill.status, v_bill.status, p_actor, p_detail);
        END IF;
        RETURN 'requery_due';
    END IF;
    IF p_reversal AND v_bill.status = 'completed' AND p_provider = 'vtpass' THEN
        -- No sooner than a minute after the last hint's re-check or the last re-check.
        v_due := greatest(now(), coalesce(v_bill.hinted_at + interval '1 minute', now()),
                          coalesce(v_bill.reversal_checked_at + interval '1 minute', now()));
        IF v_bill.reversal_checked_at IS NOT NULL          -- over: reopened, fresh tries
           OR v_bill.reversal_check_at IS NULL             -- waiting for its schedule
           OR v_bill.reversal_check_at > v_due THEN        -- waiting longer than this allows
            UPDATE bill_payments
               SET reversal_hints = reversal_hints + 1,
                   reversal_checks = CASE WHEN reversal_checked_at IS NOT NULL THEN 0
                                          ELSE reversal_checks END,
                   reversal_check_at = v_due, reversal_checked_at = NULL, hinted_at = v_due
             WHERE id = v_bill.id;
            INSERT INTO bill_payment_events (bill_payment_id, from_state, to_state, actor, detail)
            VALUES (v_bill.id, v_bill.status, v_bill.status, p_actor, p_detail);
        ELSE  -- due soon already: only counted (a re-check in flight then asks again)
            UPDATE bill_payments SET reversal_hints = reversal_hints + 1 WHERE id = v_bill.id;
        END IF;
        RETURN 'recheck_due';
    END IF;
    RETURN 'no_action';
END;
$$;

-- --- notifications: the customer and the operators hear of a reversal -------------------------

-- A reversal: the customer is told the provider reversed the bill and the cNGN is coming back
-- (bill_refunded follows once it is on the ledger, from sql/0005's trigger); operators get an
-- alert (the provider took back a delivery: worth a look at the float and the biller). A
-- trigger of its own beside sql/0005's, which stays as it is.
CREATE FUNCTION bill_payments_notify_reversal() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notifications (bill_payment_id, kind, audience, payload, dedupe_key)
    VALUES (NEW.id, 'bill_reversed', 'customer', jsonb_build_object(
                'reference', NEW.reference, 'bill_type', NEW.bill_type, 'biller', NEW.biller,
                'account_number', NEW.account_number, 'phone', NEW.customer_phone,
                'email', NEW.customer_email, 'amount_kobo', NEW.amount_kobo,
                'amount_cngn', NEW.amount_cngn::text, 'provider', NEW.provider),
            'reversed:' || NEW.id)
    ON CONFLICT (dedupe_key) DO NOTHING;
    INSERT INTO notifications (bill_payment_id, kind, audience, payload, dedupe_key)
    VALUES (NEW.id, 'provider_reversal', 'operator', jsonb_build_object(
                'reference', NEW.reference, 'provider', NEW.provider,
                'attempt_reference', NEW.attempt_reference,
                'provider_reference', NEW.provider_reference,
                'amount_kobo', NEW.amount_kobo, 'completed_at', NEW.completed_at,
                'reason', NEW.refund_reason),
            'reversal-alert:' || NEW.id)
    ON CONFLICT (dedupe_key) DO NOTHING;
    RETURN NULL;
END;
$$;

CREATE TRIGGER bill_payments_notify_reversal AFTER UPDATE OF status ON bill_payments
    FOR EACH ROW WHEN (NEW.status = 'reversed' AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION bill_payments_notify_reversal();
