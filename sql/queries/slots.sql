-- Provider concurrency slots: :n advisory locks (key :k, slot s) per provider.
-- Loaded by billpay/store/queries.py; used by billpay/store/slots.py.

-- name: take_provider_slot
-- Take a free slot of key :k, trying from a random :offset so takers spread; no row: all busy.
SELECT s
  FROM (SELECT (g + :offset) % :n AS s FROM generate_series(0, :n - 1) g) t
 WHERE pg_try_advisory_lock(:k, s)
 LIMIT 1;

-- name: release_provider_slot
-- Give slot :s of key :k back.
SELECT pg_advisory_unlock(:k, :s);

-- name: provider_slots_in_use
-- How many slots of key :k are held now, by any session.
SELECT count(*)
  FROM pg_locks
 WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND classid = CAST(:k AS bigint)::oid;
