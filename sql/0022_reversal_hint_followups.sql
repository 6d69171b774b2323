-- Reversal webhooks that the requery does not confirm yet, and a cap on forged ones
-- (issue 13 review).
--
-- VTpass does not say whether its requery shows a reversal (040) before or after it sends the
-- reversal webhook. Until now a hinted re-check that read "still delivered" closed the check
-- for good: had the requery lagged the webhook, the reversal (VTpass took our float back) was
-- lost with no alert. Now a re-check opened by a reversal webhook follows up: reading
-- "delivered" it asks again later (billpay/bills/reversal.py REVERSAL_FOLLOWUP_SECONDS), and
-- after the last follow-up it closes with an operator alert (provider_reversal_unconfirmed).
--
-- The VTpass webhook is not signed and our attempt references can be worked out from the
-- ledger (memo, time), so anyone can send reversal hints. Each one costs at most a requery a
-- minute (sql/0018), and now: after 3 reopens of a bill's finished check, a hint reopens it
-- only once its last check is a day old (else 'hint_ignored' and one reversal_hints_ignored
-- alert a day); a hint that lands while a re-check is in flight makes it ask again at most
-- 6 times per series (each counts as a try); and a hint only bumps reversal_hints (the
-- in-flight marker) while a re-check holds the claim.

ALTER TABLE bill_payments
    -- NULL: the open re-check (if any) is the scheduled one; n: a reversal webhook opened it
    -- and n follow-ups ran.
    ADD COLUMN reversal_followups integer,
    -- How often a reversal webhook reopened a finished re-check of this bill.
    ADD COLUMN reversal_reopens integer NOT NULL DEFAULT 0;

-- The re-check read "still delivered" after a reversal webhook: ask again at p_at (within a
-- minute if another webhook came while we asked), for the lease holder; the lease is given
-- back; an audit note says so.
CREATE FUNCTION bill_reversal_follow_up(p_id bigint, p_worker text, p_hints integer,
                                        p_at timestamptz, p_actor text, p_detail text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    UPDATE bill_payments
       SET reversal_check_at = CASE WHEN reversal_hints <> p_hints AND reversal_checks < 6
                                    THEN least(p_at, now() + interval '1 minute')
                                    ELSE p_at END,
           -- A webhook came while we asked: that answer predates it, so its series starts
           -- again (each such re-ask is a try: at most 6, then the follow-ups run their course).
           reversal_followups = CASE WHEN reversal_hints <> p_hints AND reversal_checks < 6
                                     THEN 0 ELSE coalesce(reversal_followups, 0) + 1 END,
           reversal_checks = reversal_checks
                             + CASE WHEN reversal_hints <> p_hints THEN 1 ELSE 0 END,
           claimed_by = NULL, claimed_until = NULL
     WHERE id = p_id AND status = 'completed' AND claimed_by = p_worker
       AND reversal_checked_at IS NULL;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO bill_payment_events (bill_payment_id, from_state, to_state, actor, detail)
    VALUES (p_id, 'completed', 'completed', p_actor, p_detail);
    RETURN true;
END;
$$;

-- As in sql/0018, and: a closed check ends its follow-up series; a webhook during the requery
-- makes it ask again at most 6 times a series (each counts as a try), so hints timed with our
-- requeries cannot keep it open for ever; and it says what it did ('asked_again', 'early',
-- 'checked'; NULL: not ours), so only a closed check raises its alert.
DROP FUNCTION bill_reversal_checked(bigint, text, integer, integer, text, text);
CREATE FUNCTION bill_reversal_checked(p_id bigint, p_worker text, p_hints integer,
                                      p_delay_seconds integer, p_actor text, p_detail text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_bill bill_payments%ROWTYPE;
BEGIN
    SELECT * INTO v_bill FROM bill_payments
     WHERE id = p_id AND status = 'completed' AND claimed_by = p_worker
       AND reversal_checked_at IS NULL
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF v_bill.reversal_hints <> p_hints AND v_bill.reversal_checks < 6 THEN
        UPDATE bill_payments
           SET reversal_check_at = now() + interval '1 minute', claimed_by = NULL,
               claimed_until = NULL, reversal_checks = reversal_checks + 1
         WHERE id = p_id;
        RETURN 'asked_again';
    END IF;
    IF p_delay_seconds > 0
       AND v_bill.completed_at + make_interval(secs => p_delay_seconds) > now() THEN
        UPDATE bill_payments
           SET reversal_check_at = NULL, reversal_checks = 0, reversal_followups = NULL,
               claimed_by = NULL, claimed_until = NULL
         WHERE id = p_id;
        INSERT INTO bill_payment_events (bill_payment_id, from_state, to_state, actor, detail)
        VALUES (p_id, 'completed', 'completed', p_actor,
                'early ' || p_detail || '; the scheduled re-check still runs');
        RETURN 'early';
    END IF;
    UPDATE bill_payments
       SET reversal_checked_at = now(), reversal_check_at = NULL, reversal_followups = NULL,
           reversal_checks = reversal_checks + 1, claimed_by = NULL, claimed_until = NULL
     WHERE id = p_id;
    INSERT INTO bill_payment_events (bill_payment_id, from_state, to_state, actor, detail)
    VALUES (p_id, 'completed', 'completed', p_actor, p_detail);
    RETURN 'checked';
END;
$$;

-- As in sql/0018, with the reopen cap, the follow-up marker and reversal_hints bumped only
-- while a re-check holds the claim (a save checks claimed_by, never the lease's end, so a
-- re-check past its lease still sees the count). Returns also 'hint_ignored' (the cap).
CREATE OR REPLACE FUNCTION bill_provider_hint(p_provider text, p_reference text, p_reversal boolean,
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
        IF v_bill.reversal_checked_at IS NOT NULL AND v_bill.reversal_reopens >= 3
           AND v_bill.reversal_checked_at > now() - interval '1 day' THEN
            -- Reopened three times and never confirmed: from now on at most once a day (a real
            -- reversal later is still re-checked within the day), and a person looks.
            INSERT INTO notifications (bill_payment_id, kind, audience, payload, dedupe_key)
            VALUES (v_bill.id, 'reversal_hints_ignored', 'operator', jsonb_build_object(
                        'reference', v_bill.reference,
                        'attempt_reference', v_bill.attempt_reference,
                        'reopens', v_bill.reversal_reopens),
                    'reversal-hints-ignored:' || v_bill.id || ':'
                        || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD'))
            ON CONFLICT (dedupe_key) DO NOTHING;
            RETURN 'hint_ignored';
        END IF;
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
                   reversal_reopens = reversal_reopens
                                      + CASE WHEN reversal_checked_at IS NOT NULL THEN 1
                                             ELSE 0 END,
                   reversal_followups = coalesce(reversal_followups, 0),
                   reversal_check_at = v_due, reversal_checked_at = NULL, hinted_at = v_due
             WHERE id = v_bill.id;
            INSERT INTO bill_payment_events (bill_payment_id, from_state, to_state, actor, detail)
            VALUES (v_bill.id, v_bill.status, v_bill.status, p_actor, p_detail);
        ELSIF v_bill.claimed_by IS NOT NULL OR v_bill.reversal_followups IS NULL THEN
            -- Due soon already: counted only while a re-check is in flight (it then asks
            -- again), and marked as a series that follows up; otherwise nothing to write.
            UPDATE bill_payments
               SET reversal_hints = reversal_hints
                                    + CASE WHEN claimed_by IS NOT NULL THEN 1 ELSE 0 END,
                   reversal_followups = coalesce(reversal_followups, 0)
             WHERE id = v_bill.id;
        END IF;
        RETURN 'recheck_due';
    END IF;
    RETURN 'no_action';
END;
$$;

-- With BILLPAY_REVERSAL_RECHECK_SECONDS=0 no bill is ever re-checked on a schedule, so every
-- delivered VTpass bill stays in bill_payments_q_reversal_recheck: the claim then reads only
-- the bills a webhook made due, through this index (claim_hinted_reversal_rechecks).
CREATE INDEX bill_payments_q_reversal_due ON bill_payments (reversal_check_at)
    WHERE status = 'completed' AND provider = 'vtpass' AND reversal_checked_at IS NULL
      AND reversal_check_at IS NOT NULL;
