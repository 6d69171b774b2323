-- Operators act on what the pipeline parks for a person (held refunds, quarantined Horizon
-- records) through `billpay refund ...` / `billpay quarantine ...`: each act keeps who and why.
ALTER TABLE refunds
    ADD COLUMN operator_note text CHECK (char_length(operator_note) <= 500),
    ADD COLUMN released_by text,
    ADD COLUMN released_at timestamptz;
ALTER TABLE ingest_quarantine
    ADD COLUMN resolution_note text CHECK (char_length(resolution_note) <= 500);
