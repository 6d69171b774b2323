-- The pipeline's heartbeat: one row per stage ('expire', 'ingest', 'match', 'bills', 'refunds',
-- 'notify'), upserted by the stage itself when it ends (billpay/store/stages.py). `billpay
-- status` reads it to tell from the database alone whether the pipeline is moving, so an alarm
-- needs no access to Prefect. Times are the database clock's.

CREATE TABLE pipeline_stages (
    stage            text PRIMARY KEY,
    last_run_at      timestamptz NOT NULL,
    last_ok          boolean NOT NULL,
    last_success_at  timestamptz,
    last_failure_at  timestamptz,
    last_error       text CHECK (char_length(last_error) <= 500),  -- masked by the writer
    runs             bigint NOT NULL DEFAULT 0,
    failures         bigint NOT NULL DEFAULT 0,
    last_summary     jsonb
);
