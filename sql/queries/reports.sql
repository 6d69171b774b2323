-- Report reads (the frames billpay/reports.py computes from) and report snapshots.
-- Loaded by billpay/store/queries.py; used by billpay/store/reports.py.

-- name: read_attempts_copy
-- Provider attempts started in [since, until), as CSV for COPY (psycopg %(name)s parameters).
-- ref_key: a 64-bit hash of (provider, reference), so matching a pay attempt with its requeries
-- costs 8 bytes a row, not a Python string; started_us: epoch microseconds (parses fast).
COPY (
    SELECT provider, operation, outcome, error_class,
           latency_ms,
           is_fallback,
           (extract(epoch FROM started_at) * 1000000)::bigint AS started_us,
           finished_at IS NOT NULL AS finished,
           CASE WHEN operation IN ('pay', 'requery') AND reference IS NOT NULL
                THEN hashtextextended(provider || ':' || reference, 0) ELSE 0 END AS ref_key
      FROM provider_attempts
     WHERE started_at >= %(since)s AND started_at < %(until)s
) TO STDOUT WITH (FORMAT csv, HEADER true);

-- name: read_bills
-- Bills whose cNGN arrived (paid_at) in [:since, :until), the columns the reports use.
SELECT bill_type, biller, status, provider, refund_reason, amount_cngn, paid_at, completed_at
  FROM bill_payments
 WHERE paid_at >= :since AND paid_at < :until;

-- name: database_now
-- The database clock (report windows end on it).
SELECT now();

-- name: lock_report_snapshot
-- Two runs writing one snapshot (:key = table|as_of|window) queue here, not on the primary key.
SELECT pg_advisory_xact_lock(hashtextextended(:key, 0));

-- name: delete_success_rate_snapshot
-- Remove one success-rate snapshot before it is written again.
DELETE FROM report_success_rate WHERE as_of = :as_of AND window_label = :window_label;

-- name: delete_provider_snapshot
-- Remove one provider-performance snapshot before it is written again.
DELETE FROM report_provider_performance WHERE as_of = :as_of AND window_label = :window_label;

-- name: insert_success_rate_snapshot
-- One row of a success-rate snapshot (columns: billpay.reports.SUCCESS_RATE_COLUMNS).
INSERT INTO report_success_rate (
    as_of, window_label, window_start, window_end, bill_type, biller, paid, completed, refunded,
    in_flight, settled, success_rate, refund_rate, refunds_by_reason, time_to_complete_p50_s,
    time_to_complete_p95_s, cngn_volume)
VALUES (
    :as_of, :window_label, :window_start, :window_end, :bill_type, :biller, :paid, :completed,
    :refunded, :in_flight, :settled, :success_rate, :refund_rate,
    CAST(:refunds_by_reason AS jsonb), :time_to_complete_p50_s, :time_to_complete_p95_s,
    :cngn_volume);

-- name: insert_provider_snapshot
-- One row of a provider-performance snapshot (columns: billpay.reports.PROVIDER_COLUMNS).
INSERT INTO report_provider_performance (
    as_of, window_label, window_start, window_end, provider, operation, calls, success, pending,
    failed, unknown, success_rate, latency_p50_ms, latency_p95_ms, latency_p99_ms, error_classes,
    fallbacks, pay_attempts_requeried, requery_share, tokens_delivered, time_to_token_p50_s,
    time_to_token_p95_s)
VALUES (
    :as_of, :window_label, :window_start, :window_end, :provider, :operation, :calls, :success,
    :pending, :failed, :unknown, :success_rate, :latency_p50_ms, :latency_p95_ms,
    :latency_p99_ms, CAST(:error_classes AS jsonb), :fallbacks, :pay_attempts_requeried,
    :requery_share, :tokens_delivered, :time_to_token_p50_s, :time_to_token_p95_s);

-- name: previous_success_rate_snapshot
-- The latest success-rate snapshot before :as_of of each window in :labels ("changed" since).
SELECT r.* FROM report_success_rate r
  JOIN (SELECT window_label, max(as_of) AS as_of FROM report_success_rate
         WHERE as_of < :as_of AND window_label = ANY(:labels)
         GROUP BY window_label) p USING (window_label, as_of)
 ORDER BY r.window_label, bill_type, biller;

-- name: previous_provider_snapshot
-- The latest provider snapshot before :as_of of each window in :labels ("changed" since).
SELECT r.* FROM report_provider_performance r
  JOIN (SELECT window_label, max(as_of) AS as_of FROM report_provider_performance
         WHERE as_of < :as_of AND window_label = ANY(:labels)
         GROUP BY window_label) p USING (window_label, as_of)
 ORDER BY r.window_label, provider, operation;

-- name: success_rate_history
-- Every success-rate snapshot of :window_label with as_of in [:since, :until].
SELECT * FROM report_success_rate
 WHERE window_label = :window_label AND as_of >= :since AND as_of <= :until
 ORDER BY as_of, bill_type, biller;

-- name: provider_history
-- Every provider snapshot of :window_label with as_of in [:since, :until].
SELECT * FROM report_provider_performance
 WHERE window_label = :window_label AND as_of >= :since AND as_of <= :until
 ORDER BY as_of, provider, operation;

-- name: seed_bench_attempts
-- :rows synthetic attempts over the 7 days before :until, tagged bench-:run-*: 2 providers x
-- (verify, pay, requery), a spread of outcomes, latencies and error classes; every 10th pay is a
-- fallback; a requery follows the call before it.
INSERT INTO provider_attempts (provider, operation, reference, started_at, finished_at,
                               latency_ms, outcome, error_class, is_fallback)
SELECT p.provider,
       o.operation,
       'bench-' || :run || '-' || CASE WHEN o.operation = 'requery' THEN g - 1 ELSE g END,
       t.started_at,
       t.started_at + make_interval(secs => t.latency / 1000.0),
       t.latency,
       CASE WHEN g % 20 = 0 THEN 'failed' WHEN g % 31 = 0 THEN 'unknown'
            WHEN g % 17 = 0 THEN 'pending' ELSE 'success' END,
       CASE WHEN g % 20 = 0 THEN (ARRAY['timeout', 'upstream_5xx', 'declined'])[1 + g % 3]
            WHEN g % 31 = 0 THEN 'timeout' END,
       o.operation = 'pay' AND g % 10 = 0
  FROM generate_series(1, :rows) AS g
  CROSS JOIN LATERAL (SELECT (ARRAY['bench-flutterwave', 'bench-vtpass'])[1 + g % 2]
                             AS provider) p
  CROSS JOIN LATERAL (SELECT CASE WHEN g % 7 = 3 THEN 'requery'
                                  WHEN g % 3 = 0 THEN 'verify' ELSE 'pay' END
                             AS operation) o
  CROSS JOIN LATERAL (SELECT :until - make_interval(
                                 secs => ((:rows - g) % 604800)::double precision
                             ) AS started_at,
                             (50 + (g::bigint * 7919) % 3000)::integer AS latency) t;

-- name: delete_bench_attempts
-- Remove the attempts seed_bench_attempts wrote for :run.
DELETE FROM provider_attempts WHERE reference LIKE 'bench-' || :run || '-%';

-- name: analyze_provider_attempts
-- Fresh planner statistics after seeding.
ANALYZE provider_attempts;
