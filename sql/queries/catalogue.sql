-- The provider catalogue as the runtime reads it (billpay.store.catalogue): the snapshot, its
-- version, and the seed of a fresh database from the built-in table. The sync writes elsewhere.

-- name: catalogue_version
-- The newest seed, sync or mapping that changed something: a cached snapshot older than this
-- is reloaded.
SELECT COALESCE(max(id), 0) AS version
FROM catalogue_syncs WHERE outcome IN ('seeded', 'applied', 'mapped');

-- name: catalogue_load_billers
SELECT code, bill_type, name FROM catalogue_billers ORDER BY code;

-- name: catalogue_load_provider_billers
-- Every listing, vanished and unmapped ones included: billpay.catalogue decides what is sold.
-- Newest vanishing last, so the live listing (or the latest vanished one) wins per provider.
SELECT provider, code, biller_code, bill_type, category, name, min_amount_kobo,
       max_amount_kobo, fee_kobo, last_seen_at, vanished_at
FROM provider_billers
ORDER BY provider, vanished_at NULLS LAST, code;

-- name: catalogue_load_provider_items
SELECT provider, provider_biller, code, product_code, name, amount_kobo, fee_kobo, label,
       last_seen_at, vanished_at
FROM provider_items
ORDER BY provider, provider_biller, first_seen_at, code;

-- name: catalogue_lock_seed
-- Held to the end of the seeding transaction: two processes starting at once seed once. The
-- same lock as catalogue_sync_lock: catalogue writes commit one at a time, in version order.
SELECT pg_advisory_xact_lock(hashtextextended('billpay:catalogue-write', 0));

-- name: catalogue_is_empty
SELECT NOT EXISTS (SELECT 1 FROM catalogue_billers)
       AND NOT EXISTS (SELECT 1 FROM provider_billers) AS empty;

-- name: catalogue_seed_biller
INSERT INTO catalogue_billers (code, bill_type, name)
VALUES (:code, :bill_type, :name)
ON CONFLICT (code) DO NOTHING;

-- name: catalogue_seed_provider_biller
-- last_seen_at stays NULL: seeded, never confirmed by a sync.
INSERT INTO provider_billers (provider, code, biller_code, bill_type, category, name)
VALUES (:provider, :code, :biller_code, :bill_type, :category, :name)
ON CONFLICT (provider, code) DO NOTHING;

-- name: catalogue_seed_provider_item
INSERT INTO provider_items (provider, provider_biller, code, product_code, name, amount_kobo)
VALUES (:provider, :provider_biller, :code, :product_code, :name, :amount_kobo)
ON CONFLICT (provider, provider_biller, code) DO NOTHING;

-- name: catalogue_record_seed
INSERT INTO catalogue_syncs (provider, finished_at, outcome, billers, items, added, detail)
VALUES (NULL, now(), 'seeded', :billers, :items, :added, 'the built-in table')
RETURNING id;
