-- The report reads of sql/queries/reports.sql for one API client (GET /api/bills/stats): the
-- same columns in the same shape, so billpay.reports computes the same metrics from them.

-- name: read_client_bills
-- Bills of API client :client whose cNGN arrived (paid_at) in [:since, :until).
SELECT bill_type, biller, status, provider, refund_reason, amount_cngn, paid_at, completed_at
  FROM bill_payments
 WHERE api_client_id = :client AND paid_at >= :since AND paid_at < :until;

-- name: read_client_attempts_copy
-- Provider attempts for API client %(client)s's bills, started in [since, until), as CSV for
-- COPY (psycopg %(name)s parameters); the columns of read_attempts_copy.
COPY (
    SELECT a.provider, a.operation, a.outcome, a.error_class,
           a.latency_ms,
           a.is_fallback,
           (extract(epoch FROM a.started_at) * 1000000)::bigint AS started_us,
           a.finished_at IS NOT NULL AS finished,
           CASE WHEN a.operation IN ('pay', 'requery') AND a.reference IS NOT NULL
                THEN hashtextextended(a.provider || ':' || a.reference, 0) ELSE 0 END AS ref_key
      FROM provider_attempts a
      JOIN bill_payments b ON b.id = a.bill_payment_id
     WHERE b.api_client_id = %(client)s
       AND a.started_at >= %(since)s AND a.started_at < %(until)s
) TO STDOUT WITH (FORMAT csv, HEADER true);
