-- The API's per-key rate limit (billpay/api/ratelimit.py), counted here so every `billpay api`
-- process on this database shares it: the `limits` package's sliding window counter, one row
-- per limit key holding the key's current window and the one before it (a window starts at the
-- key's first hit, then follows every window length).
-- UNLOGGED: a write per request writes no WAL; a crash empties the table, which only resets the
-- windows. Rows are rewritten in place, so a busy key keeps one row; the rows of keys no longer
-- used (a revoked client, a changed BILLPAY_API_RATE_LIMIT) are pruned once past expires_at.
CREATE UNLOGGED TABLE api_rate_limit (
    key           text PRIMARY KEY,      -- limits' key: LIMITER/<client id>/<amount>/<n>/<unit>
    window_start  timestamptz NOT NULL,  -- start of the current window
    previous_hits integer NOT NULL CHECK (previous_hits >= 0),  -- hits in the window before it
    current_hits  integer NOT NULL CHECK (current_hits >= 0),
    expires_at    timestamptz NOT NULL   -- window_start + two windows: past it, nothing counts
);

-- A key's windows as of p_at, for windows p_window seconds long: unchanged within the current
-- window; one window later its hits are the previous window's and a new one starts; two windows
-- later nothing counts and a new window starts at p_at. remaining: seconds left in the current
-- window (what the previous window's hits still weigh is previous_hits * remaining / p_window).
-- p_at before p_start (another process's statement moved the window while this one waited for
-- the row) counts as the window's start.
CREATE FUNCTION api_rate_limit_window(
    p_start timestamptz, p_previous integer, p_current integer, p_window double precision,
    p_at timestamptz,
    OUT window_start timestamptz, OUT previous_hits integer, OUT current_hits integer,
    OUT remaining double precision
)
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN w.windows < 1 THEN p_start
                WHEN w.windows < 2 THEN p_start + make_interval(secs => p_window)
                ELSE p_at END,
           CASE WHEN w.windows < 1 THEN p_previous WHEN w.windows < 2 THEN p_current ELSE 0 END,
           CASE WHEN w.windows < 1 THEN p_current ELSE 0 END,
           CASE WHEN w.windows < 1 THEN p_window - w.elapsed
                WHEN w.windows < 2 THEN 2 * p_window - w.elapsed
                ELSE p_window END
    FROM (SELECT e.elapsed, e.elapsed / p_window AS windows
          FROM (SELECT greatest(0, extract(epoch FROM p_at - p_start))::double precision
                       AS elapsed) e) w;
$$;
