-- The API's per-key rate limit, shared by every API process (billpay/store/rate_limits.py; the
-- table and api_rate_limit_window are sql/0021_api_rate_limit.sql). Loaded by
-- billpay/store/queries.py. :window is the window length in seconds.

-- name: acquire_rate_limit_entry
-- Count :amount hits on :key when its weighted count stays within :limit: the previous
-- window's hits weighted by the part of it the sliding window still covers (rounded down), plus
-- the current window's, plus :amount. A row back: counted; none: refused, nothing written.
-- One statement: the key's row stays locked from the check to the write, so two processes
-- cannot both take the last request. A new key's first hit starts its window (the caller never
-- asks for more than :limit at once).
INSERT INTO api_rate_limit AS r (key, window_start, previous_hits, current_hits, expires_at)
VALUES (:key, now(), 0, :amount, now() + make_interval(secs => 2 * :window))
ON CONFLICT (key) DO UPDATE
SET (window_start, previous_hits, current_hits, expires_at) = (
    SELECT n.window_start, n.previous_hits, n.current_hits + excluded.current_hits,
           n.window_start + make_interval(secs => 2 * :window)
    FROM api_rate_limit_window(r.window_start, r.previous_hits, r.current_hits, :window, now()) n
)
WHERE (
    SELECT floor(n.previous_hits * n.remaining / :window) + n.current_hits + excluded.current_hits
    FROM api_rate_limit_window(r.window_start, r.previous_hits, r.current_hits, :window, now()) n
) <= :limit
RETURNING current_hits;

-- name: rate_limit_window
-- The key's windows now, as limits' sliding window counter reads them: the previous window's
-- hits and the seconds until they stop counting, the current window's hits and the seconds
-- until they stop counting (one window more). No row: the key has no hits.
SELECT n.previous_hits, n.remaining AS previous_ttl, n.current_hits,
       n.remaining + :window AS current_ttl
FROM api_rate_limit r,
     api_rate_limit_window(r.window_start, r.previous_hits, r.current_hits, :window, now()) n
WHERE r.key = :key;

-- name: clear_rate_limit
-- Forget the key's hits.
DELETE FROM api_rate_limit WHERE key = :key;

-- name: clear_all_rate_limits
-- Forget every key's hits.
DELETE FROM api_rate_limit;

-- name: prune_rate_limits
-- Delete the rows past their two windows: they count nothing (a key used again starts afresh).
DELETE FROM api_rate_limit WHERE expires_at < now();
