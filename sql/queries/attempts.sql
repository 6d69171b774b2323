-- Provider calls as rows of provider_attempts.
-- Loaded by billpay/store/queries.py; used by billpay/store/attempts.py.

-- name: start_pay_attempt
-- A pay attempt, written and committed before its HTTP call (its reference is then requeryable).
INSERT INTO provider_attempts (bill_payment_id, provider, operation, reference, attempt_no,
                               is_fallback, started_at)
VALUES (:bill, :provider, 'pay', :ref, :no, :fallback, clock_timestamp())
RETURNING id;

-- name: finish_attempt
-- Fill in a started attempt from the call's record.
UPDATE provider_attempts
   SET finished_at = :finished, latency_ms = :latency, outcome = :outcome,
       error_class = :error_class, http_status = :http_status,
       response_summary = CAST(:summary AS jsonb)
 WHERE id = :id;

-- name: record_call
-- A verify or requery call, written after it returned.
INSERT INTO provider_attempts (bill_payment_id, provider, operation, reference, attempt_no,
                               started_at, finished_at, latency_ms, outcome, error_class,
                               http_status, response_summary)
VALUES (:bill, :provider, :operation, :ref, :no, :started, :finished, :latency, :outcome,
        :error_class, :http_status, CAST(:summary AS jsonb))
RETURNING id;

-- name: pay_attempts
-- The pay attempts of one bill, oldest first.
SELECT id, provider, reference, attempt_no, outcome, error_class, started_at, finished_at,
       is_fallback
  FROM provider_attempts
 WHERE bill_payment_id = :bill AND operation = 'pay'
 ORDER BY id;

-- name: close_attempt
-- Finish a started attempt from its outcome alone (no HTTP details); latency from started_at.
UPDATE provider_attempts
   SET finished_at = clock_timestamp(), outcome = :outcome, error_class = :error_class,
       latency_ms = (extract(epoch FROM clock_timestamp() - started_at) * 1000)::int
 WHERE id = :id AND finished_at IS NULL;

-- name: start_resend_attempt
-- The open pay attempt's request sent once more under the same reference, written and committed
-- before its HTTP call, only while :worker holds the bill's lease with this attempt open (the
-- lease is renewed for the call, as bill_open_attempt does for a pay). The partial unique index
-- (sql/0011) allows one resend per reference: no row back means it was resent already or the
-- bill is not this worker's, so nothing is sent.
WITH held AS (
    UPDATE bill_payments
       SET claimed_until = now() + make_interval(secs => :lease)
     WHERE id = :bill AND claimed_by = :worker AND claimed_until > now()
       AND status = 'provider_processing' AND attempt_reference = :ref
    RETURNING id
)
INSERT INTO provider_attempts (bill_payment_id, provider, operation, reference, attempt_no,
                               started_at)
SELECT held.id, :provider, 'resend', :ref, :no, clock_timestamp() FROM held
ON CONFLICT (provider, reference) WHERE operation = 'resend' DO NOTHING
RETURNING id;

-- name: resend_of
-- The resend of one pay reference, if it was made (outcome 'duplicate': the provider refused it
-- because the first request had arrived).
SELECT id, outcome, started_at, finished_at
  FROM provider_attempts
 WHERE provider = :provider AND reference = :ref AND operation = 'resend';
