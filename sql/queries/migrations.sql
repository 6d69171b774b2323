-- Schema migrations: the lock billpay/store/migrations.py holds around yoyo.
-- Loaded by billpay/store/queries.py.

-- name: lock_migrations
-- Session advisory lock :k: two processes upgrading at once queue instead of racing.
SELECT pg_advisory_lock(:k);

-- name: unlock_migrations
-- Release lock_migrations.
SELECT pg_advisory_unlock(:k);
