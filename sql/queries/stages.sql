-- The pipeline's heartbeat (table in sql/0008_pipeline_stages.sql). Loaded by
-- billpay/store/queries.py; used by billpay/store/stages.py.

-- name: record_stage
-- One run of :stage ended (:ok). A failure keeps the last success time; a success keeps the
-- last failure's time and error, so `billpay status` can still show what went wrong before.
INSERT INTO pipeline_stages AS s (
    stage, last_run_at, last_ok, last_success_at, last_failure_at, last_error, runs, failures,
    last_summary)
VALUES (
    :stage, now(), CAST(:ok AS boolean),
    CASE WHEN CAST(:ok AS boolean) THEN now() END,
    CASE WHEN CAST(:ok AS boolean) THEN NULL ELSE now() END,
    CAST(:error AS text), 1,
    CASE WHEN CAST(:ok AS boolean) THEN 0 ELSE 1 END,
    CAST(:summary AS jsonb))
ON CONFLICT (stage) DO UPDATE SET
    last_run_at     = excluded.last_run_at,
    last_ok         = excluded.last_ok,
    last_success_at = coalesce(excluded.last_success_at, s.last_success_at),
    last_failure_at = coalesce(excluded.last_failure_at, s.last_failure_at),
    last_error      = CASE WHEN excluded.last_ok THEN s.last_error ELSE excluded.last_error END,
    runs            = s.runs + 1,
    failures        = s.failures + excluded.failures,
    last_summary    = excluded.last_summary;
