-- billpay schema: tables, the state machine trigger, indexes.
-- Applied by `billpay db upgrade` (yoyo-migrations); every later change is a new numbered file.

CREATE TABLE bill_state_transitions (
    from_state text NOT NULL,
    to_state   text NOT NULL,
    PRIMARY KEY (from_state, to_state)
);

-- Mirrors billpay/states.py ALLOWED_TRANSITIONS (tests/integration/test_states_sql.py proves it).
INSERT INTO bill_state_transitions (from_state, to_state) VALUES
    ('pending_payment', 'cngn_received'),
    ('pending_payment', 'refund_initiated'),
    ('pending_payment', 'expired'),
    ('cngn_received', 'verifying_account'),
    ('verifying_account', 'processing_bill'),
    ('verifying_account', 'account_invalid'),
    ('verifying_account', 'retry_scheduled'),
    ('account_invalid', 'refund_initiated'),
    ('processing_bill', 'provider_processing'),
    ('processing_bill', 'completed'),
    ('processing_bill', 'retry_scheduled'),
    ('processing_bill', 'provider_failed'),
    ('provider_processing', 'completed'),
    ('provider_processing', 'retry_scheduled'),
    ('provider_processing', 'provider_failed'),
    ('retry_scheduled', 'processing_bill'),
    ('retry_scheduled', 'provider_failed'),
    ('provider_failed', 'refund_initiated'),
    ('refund_initiated', 'refund_processing'),
    ('refund_processing', 'refunded'),
    ('refund_processing', 'refund_initiated');

CREATE TABLE bill_payments (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reference           text NOT NULL,
    bill_type           text NOT NULL CHECK (bill_type IN ('electricity', 'airtime', 'data', 'cable_tv', 'water')),
    biller              text NOT NULL,
    product_code        text,
    account_number      text NOT NULL,
    account_type        text,
    network             text,
    customer_phone      text NOT NULL,
    customer_email      text,
    amount_kobo         bigint NOT NULL CHECK (amount_kobo > 0),
    fee_kobo            bigint NOT NULL DEFAULT 0 CHECK (fee_kobo >= 0),
    amount_cngn         numeric(20, 7) NOT NULL CHECK (amount_cngn > 0),
    expires_at          timestamptz NOT NULL,
    status              text NOT NULL DEFAULT 'pending_payment' CHECK (status IN (
                            'pending_payment', 'cngn_received', 'verifying_account', 'account_invalid',
                            'processing_bill', 'provider_processing', 'completed', 'retry_scheduled',
                            'provider_failed', 'refund_initiated', 'refund_processing', 'refunded',
                            'expired')),
    incoming_payment_id bigint,
    provider            text,
    provider_reference  text,
    attempt_reference   text,
    token               text,
    units               text,
    retry_count         integer NOT NULL DEFAULT 0,
    requery_count       integer NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz,
    last_error          text,
    last_error_class    text,
    refund_reason       text,
    verification        jsonb,
    claimed_by          text,
    claimed_until       timestamptz,
    paid_at             timestamptz,
    completed_at        timestamptz,
    refunded_at         timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT bill_payments_reference_key UNIQUE (reference)
);

CREATE TABLE bill_payment_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bill_payment_id bigint NOT NULL REFERENCES bill_payments (id),
    from_state      text,
    to_state        text NOT NULL,
    at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor           text,
    detail          text
);
CREATE INDEX bill_payment_events_bill_idx ON bill_payment_events (bill_payment_id, id);

CREATE TABLE incoming_payments (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operation_id      text NOT NULL UNIQUE,
    paging_token      text NOT NULL,
    transaction_hash  text NOT NULL,
    operation_type    text NOT NULL,
    from_account      text NOT NULL,
    from_muxed        text,
    to_account        text NOT NULL,
    asset_code        text NOT NULL,
    asset_issuer      text NOT NULL,
    amount            numeric(20, 7) NOT NULL CHECK (amount > 0),
    memo_type         text NOT NULL DEFAULT 'none',
    memo              text,
    ledger            bigint,
    ledger_time       timestamptz NOT NULL,
    received_at       timestamptz NOT NULL DEFAULT now(),
    match_outcome     text CHECK (match_outcome IN (
                          'matched', 'amount_mismatch', 'order_not_payable', 'unknown_reference',
                          'held_for_review')),
    bill_payment_id   bigint REFERENCES bill_payments (id),
    matched_at        timestamptz
);
CREATE INDEX incoming_payments_unmatched_idx ON incoming_payments (id) WHERE match_outcome IS NULL;
CREATE INDEX incoming_payments_bill_idx ON incoming_payments (bill_payment_id);

ALTER TABLE bill_payments
    ADD CONSTRAINT bill_payments_incoming_payment_fk
    FOREIGN KEY (incoming_payment_id) REFERENCES incoming_payments (id);
CREATE UNIQUE INDEX bill_payments_incoming_payment_key ON bill_payments (incoming_payment_id)
    WHERE incoming_payment_id IS NOT NULL;

CREATE TABLE ingest_cursors (
    account     text PRIMARY KEY,
    cursor      text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE provider_attempts (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bill_payment_id   bigint REFERENCES bill_payments (id),
    provider          text NOT NULL,
    operation         text NOT NULL CHECK (operation IN ('verify', 'pay', 'requery', 'catalogue')),
    reference         text,
    attempt_no        integer,
    started_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    latency_ms        integer,
    outcome           text,
    error_class       text,
    http_status       integer,
    response_summary  jsonb,
    is_fallback       boolean NOT NULL DEFAULT false
);
-- One pay attempt per provider reference: the reference is fixed before the HTTP call.
CREATE UNIQUE INDEX provider_attempts_pay_reference_key ON provider_attempts (provider, reference)
    WHERE operation = 'pay';
CREATE INDEX provider_attempts_bill_idx ON provider_attempts (bill_payment_id, id);
CREATE INDEX provider_attempts_started_idx ON provider_attempts (started_at);

CREATE TABLE refunds (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incoming_payment_id bigint NOT NULL REFERENCES incoming_payments (id),
    bill_payment_id     bigint REFERENCES bill_payments (id),
    destination         text NOT NULL,
    amount              numeric(20, 7) NOT NULL CHECK (amount > 0),
    memo                text NOT NULL CHECK (octet_length(memo) <= 28),
    reason              text NOT NULL,
    status              text NOT NULL DEFAULT 'pending' CHECK (status IN (
                            'pending', 'submitted', 'confirmed', 'held')),
    hold_reason         text,
    envelope_xdr        text,
    tx_hash             text,
    sequence            bigint,
    max_time            timestamptz,
    submit_attempts     integer NOT NULL DEFAULT 0,
    last_error          text,
    result_codes        jsonb,
    next_attempt_at     timestamptz,
    claimed_by          text,
    claimed_until       timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    submitted_at        timestamptz,
    confirmed_at        timestamptz,
    CONSTRAINT refunds_incoming_payment_key UNIQUE (incoming_payment_id)
);
CREATE UNIQUE INDEX refunds_tx_hash_key ON refunds (tx_hash) WHERE tx_hash IS NOT NULL;
CREATE INDEX refunds_open_idx ON refunds (next_attempt_at NULLS FIRST, id)
    WHERE status IN ('pending', 'submitted');
CREATE INDEX refunds_held_idx ON refunds (id) WHERE status = 'held';

CREATE TABLE notifications (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bill_payment_id  bigint REFERENCES bill_payments (id),
    kind             text NOT NULL,
    audience         text NOT NULL DEFAULT 'customer' CHECK (audience IN ('customer', 'operator')),
    payload          jsonb NOT NULL,
    dedupe_key       text UNIQUE,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    claimed_by       text,
    claimed_until    timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz
);
CREATE INDEX notifications_pending_idx ON notifications (next_attempt_at, id) WHERE status = 'pending';

-- Partial indexes: each queue view below reads exactly one of these.
CREATE INDEX bill_payments_q_cngn_received ON bill_payments (id) WHERE status = 'cngn_received';
CREATE INDEX bill_payments_q_verifying ON bill_payments (claimed_until) WHERE status = 'verifying_account';
CREATE INDEX bill_payments_q_processing ON bill_payments (id) WHERE status = 'processing_bill';
CREATE INDEX bill_payments_q_provider_processing ON bill_payments (next_attempt_at)
    WHERE status = 'provider_processing';
CREATE INDEX bill_payments_q_retry ON bill_payments (next_attempt_at) WHERE status = 'retry_scheduled';
CREATE INDEX bill_payments_q_refundable ON bill_payments (id)
    WHERE status IN ('account_invalid', 'provider_failed');
CREATE INDEX bill_payments_q_pending_expiry ON bill_payments (expires_at) WHERE status = 'pending_payment';
CREATE INDEX bill_payments_active_updated ON bill_payments (updated_at)
    WHERE status NOT IN ('completed', 'refunded', 'expired');
CREATE INDEX bill_payments_created_idx ON bill_payments (created_at);

-- The state machine, enforced by the database for every writer, psql included.
CREATE FUNCTION bill_payments_guard_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'pending_payment' THEN
            RAISE EXCEPTION 'bill % must be created as pending_payment, not %', NEW.reference, NEW.status
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        IF NOT EXISTS (SELECT 1 FROM bill_state_transitions
                       WHERE from_state = OLD.status AND to_state = NEW.status) THEN
            RAISE EXCEPTION 'invalid bill transition % -> % for %', OLD.status, NEW.status, OLD.reference
                USING ERRCODE = 'check_violation';
        END IF;
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END;
$$;

CREATE FUNCTION bill_payments_log_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO bill_payment_events (bill_payment_id, from_state, to_state, actor, detail)
        VALUES (NEW.id, NULL, NEW.status, nullif(current_setting('billpay.actor', true), ''),
                nullif(current_setting('billpay.detail', true), ''));
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO bill_payment_events (bill_payment_id, from_state, to_state, actor, detail)
        VALUES (NEW.id, OLD.status, NEW.status, nullif(current_setting('billpay.actor', true), ''),
                nullif(current_setting('billpay.detail', true), ''));
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER bill_payments_guard BEFORE INSERT OR UPDATE OF status ON bill_payments
    FOR EACH ROW EXECUTE FUNCTION bill_payments_guard_transition();
CREATE TRIGGER bill_payments_events AFTER INSERT OR UPDATE OF status ON bill_payments
    FOR EACH ROW EXECUTE FUNCTION bill_payments_log_transition();
