-- Report snapshots written by the reporting flows (flows/reports.py); computed with pandas
-- (billpay/reports.py). One snapshot = every row with one (as_of, window_label); a rerun for
-- the same as_of replaces its snapshot (delete + insert in one transaction), and the primary
-- keys make a duplicate impossible even for a careless writer.
--
-- window_label: a rolling window such as '1h', '24h', '7d' ending at as_of, or 'day' for the
-- daily report (the previous calendar day in Africa/Lagos). '*' in a dimension column means
-- "all" (a roll-up row). Rates are NULL when their denominator is zero ("no data").

CREATE TABLE report_success_rate (
    as_of                   timestamptz NOT NULL,
    window_label            text NOT NULL,
    window_start            timestamptz NOT NULL,
    window_end              timestamptz NOT NULL,
    bill_type               text NOT NULL,
    biller                  text NOT NULL,
    paid                    integer NOT NULL,
    completed               integer NOT NULL,
    refunded                integer NOT NULL,
    in_flight               integer NOT NULL,
    settled                 integer NOT NULL,
    success_rate            numeric(5, 4),
    refund_rate             numeric(5, 4),
    refunds_by_reason       jsonb NOT NULL DEFAULT '{}',
    time_to_complete_p50_s  double precision,
    time_to_complete_p95_s  double precision,
    cngn_volume             numeric(20, 7) NOT NULL DEFAULT 0,
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (as_of, window_label, bill_type, biller)
);
CREATE INDEX report_success_rate_history_idx ON report_success_rate (window_label, as_of DESC);

CREATE TABLE report_provider_performance (
    as_of                   timestamptz NOT NULL,
    window_label            text NOT NULL,
    window_start            timestamptz NOT NULL,
    window_end              timestamptz NOT NULL,
    provider                text NOT NULL,
    operation               text NOT NULL,
    calls                   integer NOT NULL,
    success                 integer NOT NULL,
    pending                 integer NOT NULL,
    failed                  integer NOT NULL,
    unknown                 integer NOT NULL,
    success_rate            numeric(5, 4),
    latency_p50_ms          double precision,
    latency_p95_ms          double precision,
    latency_p99_ms          double precision,
    error_classes           jsonb NOT NULL DEFAULT '{}',
    fallbacks               integer NOT NULL DEFAULT 0,
    pay_attempts_requeried  integer,
    requery_share           numeric(5, 4),
    tokens_delivered        integer,
    time_to_token_p50_s     double precision,
    time_to_token_p95_s     double precision,
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (as_of, window_label, provider, operation)
);
CREATE INDEX report_provider_performance_history_idx
    ON report_provider_performance (window_label, as_of DESC);
