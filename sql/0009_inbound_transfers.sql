-- Every inbound value transfer to the system account is one incoming_payments row with an
-- outcome: classic and path payments of any asset, contract (SAC) transfers, account creation
-- and merges. Records that claim to be inbound but cannot be read go to ingest_quarantine.
-- Refunds go back in the asset received.

-- --- incoming_payments: any asset, muxed destinations, merges without an amount --------------

-- The default keeps existing rows (and writers that predate this file) cNGN, as they were.
ALTER TABLE incoming_payments
    ADD COLUMN asset_type text NOT NULL DEFAULT 'credit_alphanum4'
        CHECK (asset_type IN ('native', 'credit_alphanum4', 'credit_alphanum12')),
    -- The muxed id of the M-address paid (classic to_muxed_id, contract destination_muxed_id):
    -- an unsigned 64-bit integer, which a bigint cannot hold.
    ADD COLUMN to_muxed_id numeric(20, 0) CHECK (to_muxed_id >= 0 AND to_muxed_id < 2 ^ 64),
    ALTER COLUMN asset_code DROP NOT NULL,
    ALTER COLUMN asset_issuer DROP NOT NULL,
    -- Horizon's account_merge record does not say how much XLM the merge moved.
    ALTER COLUMN amount DROP NOT NULL;
ALTER TABLE incoming_payments
    ADD CONSTRAINT incoming_payments_asset_check CHECK (
        (asset_type = 'native' AND asset_code IS NULL AND asset_issuer IS NULL)
        OR (asset_type <> 'native' AND asset_code IS NOT NULL AND asset_issuer IS NOT NULL)),
    ADD CONSTRAINT incoming_payments_amount_known_check CHECK (
        amount IS NOT NULL OR operation_type = 'account_merge');

-- The outcomes of billpay.stellar.matching.MatchOutcome (a unit test keeps them in step).
ALTER TABLE incoming_payments DROP CONSTRAINT incoming_payments_match_outcome_check;
ALTER TABLE incoming_payments ADD CONSTRAINT incoming_payments_match_outcome_check CHECK (
    match_outcome IN ('matched', 'amount_mismatch', 'order_not_payable', 'unknown_reference',
                      'held_for_review', 'wrong_asset', 'treasury'));

-- The view expands * at creation: recreate it so the matcher sees the new columns.
CREATE OR REPLACE VIEW queue_match_payments AS
    SELECT * FROM incoming_payments WHERE match_outcome IS NULL;

-- --- refunds: the asset to send back --------------------------------------------------------

ALTER TABLE refunds
    ADD COLUMN asset_type text CHECK (asset_type IN (
        'native', 'credit_alphanum4', 'credit_alphanum12')),
    ADD COLUMN asset_code text,
    ADD COLUMN asset_issuer text;
-- Existing refunds return the cNGN they received.
UPDATE refunds r
   SET asset_type = ip.asset_type, asset_code = ip.asset_code, asset_issuer = ip.asset_issuer
  FROM incoming_payments ip
 WHERE ip.id = r.incoming_payment_id;
ALTER TABLE refunds
    ALTER COLUMN asset_type SET NOT NULL,
    ADD CONSTRAINT refunds_asset_check CHECK (
        (asset_type = 'native' AND asset_code IS NULL AND asset_issuer IS NULL)
        OR (asset_type <> 'native' AND asset_code IS NOT NULL AND asset_issuer IS NOT NULL));

-- A refund always returns what its payment brought, and a contract (C...) cannot receive a
-- classic payment: every refund row, whichever writer inserts it (the matcher,
-- transition_bill_to_refund, bill_refund_amount_mismatch), takes the payment's asset here, and
-- one to a contract starts held for an operator. One place, so no insert path can forget.
CREATE FUNCTION refunds_from_payment() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    SELECT ip.asset_type, ip.asset_code, ip.asset_issuer
      INTO NEW.asset_type, NEW.asset_code, NEW.asset_issuer
      FROM incoming_payments ip
     WHERE ip.id = NEW.incoming_payment_id;
    -- A refund already held for another reason keeps it; releasing it reaches the same check
    -- again when the refunder builds (billpay/stellar/refunds.py).
    IF NEW.destination LIKE 'C%' AND NEW.status = 'pending' THEN
        NEW.status := 'held';
        NEW.hold_reason := 'contract_payer';
        NEW.last_error := 'the payer is a contract: a classic payment cannot reach it';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER refunds_from_payment BEFORE INSERT ON refunds
    FOR EACH ROW EXECUTE FUNCTION refunds_from_payment();

CREATE OR REPLACE VIEW queue_refunds AS
    SELECT * FROM refunds
    WHERE status IN ('pending', 'submitted')
      AND (next_attempt_at IS NULL OR next_attempt_at <= now())
      AND (claimed_until IS NULL OR claimed_until < now());

-- --- quarantine: records that claim to be inbound but cannot be read ------------------------

CREATE TABLE ingest_quarantine (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account       text NOT NULL,
    -- paging_token, else id, else a hash of the record: a replayed page quarantines nothing twice
    record_key    text NOT NULL,
    paging_token  text,
    record        jsonb NOT NULL,  -- sanitised by the ingester (no NUL, no lone surrogate)
    error         text NOT NULL CHECK (char_length(error) <= 500),
    created_at    timestamptz NOT NULL DEFAULT now(),
    resolved_at   timestamptz,
    resolved_by   text,
    CONSTRAINT ingest_quarantine_record_key UNIQUE (account, record_key)
);
CREATE INDEX ingest_quarantine_open_idx ON ingest_quarantine (created_at)
    WHERE resolved_at IS NULL;
