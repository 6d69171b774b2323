-- The catalogue sync's writes to the 0019 tables (billpay/store/catalogue_sync.py). One sync of
-- one provider runs these in one transaction, under catalogue_sync_lock.

-- name: catalogue_sync_lock
-- One catalogue write at a time (a sync of either provider, an operator mapping, the seed): the
-- diff is computed from what this transaction read, so nobody may change those rows under it,
-- and the catalogue_syncs ids (the version every process reloads on) are then allocated in
-- commit order: a process can never load version N+1 without a change committed as N.
-- (:provider names whose write it is, for pg_locks readers; the lock itself is one.)
SELECT pg_advisory_xact_lock(hashtextextended('billpay:catalogue-write', 0)),
       CAST(:provider AS text) AS provider

-- name: catalogue_now
-- The transaction's time: every row one sync touches carries the same last_seen_at.
SELECT now()

-- name: catalogue_our_billers
SELECT code, bill_type FROM catalogue_billers

-- name: catalogue_provider_billers
SELECT code, biller_code, bill_type, category, name, min_amount_kobo, max_amount_kobo,
       fee_kobo, vanished_at IS NOT NULL AS vanished
  FROM provider_billers
 WHERE provider = :provider

-- name: catalogue_provider_items
SELECT provider_biller, code, product_code, name, amount_kobo, fee_kobo, label,
       vanished_at IS NOT NULL AS vanished
  FROM provider_items
 WHERE provider = :provider

-- name: catalogue_insert_our_biller
-- A biller of ours first found by a sync (or named by the built-in table for a mapped code).
INSERT INTO catalogue_billers (code, bill_type, name)
VALUES (:code, :bill_type, :name)
ON CONFLICT (code) DO NOTHING

-- name: catalogue_vanish_billers
-- Billers the provider no longer lists: not routed there until listed again. Their items too.
UPDATE provider_billers SET vanished_at = :now
 WHERE provider = :provider AND code = ANY(CAST(:codes AS text[])) AND vanished_at IS NULL

-- name: catalogue_vanish_biller_items
UPDATE provider_items SET vanished_at = :now
 WHERE provider = :provider AND provider_biller = :biller AND code = ANY(CAST(:codes AS text[]))
   AND vanished_at IS NULL

-- name: catalogue_upsert_provider_biller
-- A listed biller as the sync saw it: seen now, not vanished. An existing mapping is kept (an
-- operator's included); a sync only fills one in, or clears it (:displaced) for a code that
-- comes back while another code of this provider sells that biller of ours.
INSERT INTO provider_billers (provider, code, biller_code, bill_type, category, name,
                              min_amount_kobo, max_amount_kobo, fee_kobo, last_seen_at)
VALUES (:provider, :code, :biller_code, :bill_type, :category, :name,
        :min_amount_kobo, :max_amount_kobo, :fee_kobo, :now)
ON CONFLICT (provider, code) DO UPDATE
   SET biller_code = CASE WHEN CAST(:displaced AS boolean) THEN NULL
                          ELSE COALESCE(provider_billers.biller_code, EXCLUDED.biller_code) END,
       bill_type = COALESCE(EXCLUDED.bill_type, provider_billers.bill_type),
       category = EXCLUDED.category,
       name = EXCLUDED.name,
       min_amount_kobo = EXCLUDED.min_amount_kobo,
       max_amount_kobo = EXCLUDED.max_amount_kobo,
       fee_kobo = EXCLUDED.fee_kobo,
       last_seen_at = EXCLUDED.last_seen_at,
       vanished_at = NULL

-- name: catalogue_clear_item_products
-- Before a biller's items get their products: no product is held while it moves from one item
-- code to another, so the one-code-per-product index never sees two holders mid-transaction.
UPDATE provider_items SET product_code = NULL
 WHERE provider = :provider AND provider_biller = :biller AND code = ANY(CAST(:codes AS text[]))
   AND product_code IS NOT NULL

-- name: catalogue_upsert_provider_item
INSERT INTO provider_items (provider, provider_biller, code, product_code, name, amount_kobo,
                            fee_kobo, label, last_seen_at)
VALUES (:provider, :biller, :code, :product_code, :name, :amount_kobo, :fee_kobo, :label, :now)
ON CONFLICT (provider, provider_biller, code) DO UPDATE
   SET product_code = EXCLUDED.product_code,
       name = EXCLUDED.name,
       amount_kobo = EXCLUDED.amount_kobo,
       fee_kobo = EXCLUDED.fee_kobo,
       label = EXCLUDED.label,
       last_seen_at = EXCLUDED.last_seen_at,
       vanished_at = NULL

-- name: catalogue_record_sync
-- One row per provider per run (and per operator mapping): the catalogue's version moves with
-- the newest row whose outcome changed something (applied, mapped, seeded).
INSERT INTO catalogue_syncs (provider, started_at, finished_at, outcome, billers, items, added,
                             changed, vanished, detail)
VALUES (:provider, :started_at, now(), :outcome, :billers, :items, :added, :changed, :vanished,
        :detail)
RETURNING id, finished_at

-- name: catalogue_map_provider_biller
-- An operator maps a listed biller to one of ours (only a listed one, and only while no other
-- code of this provider sells ours: the partial unique index says the same).
UPDATE provider_billers
   SET biller_code = :biller_code, bill_type = :bill_type
 WHERE provider = :provider AND code = :code AND vanished_at IS NULL
RETURNING code

-- name: catalogue_set_item_product
UPDATE provider_items SET product_code = :product_code
 WHERE provider = :provider AND provider_biller = :biller AND code = :code

-- name: catalogue_show
-- Every provider biller, mapped or not, with its items (NULL columns when it has none).
SELECT pb.provider, pb.code, pb.biller_code, pb.bill_type, pb.category, pb.name,
       pb.min_amount_kobo, pb.max_amount_kobo, pb.fee_kobo, pb.first_seen_at, pb.last_seen_at,
       pb.vanished_at, cb.name AS biller_name,
       pi.code AS item_code, pi.product_code, pi.name AS item_name, pi.amount_kobo,
       pi.fee_kobo AS item_fee_kobo, pi.label, pi.last_seen_at AS item_last_seen_at,
       pi.vanished_at AS item_vanished_at
  FROM provider_billers pb
  LEFT JOIN catalogue_billers cb ON cb.code = pb.biller_code
  LEFT JOIN provider_items pi ON pi.provider = pb.provider AND pi.provider_biller = pb.code
 WHERE CAST(:bill_type AS text) IS NULL OR pb.bill_type = :bill_type
 ORDER BY pb.bill_type NULLS LAST, pb.biller_code NULLS LAST, pb.provider, pb.code, pi.code

-- name: catalogue_last_syncs
SELECT DISTINCT ON (provider) id, provider, started_at, finished_at, outcome, billers, items,
       added, changed, vanished, detail
  FROM catalogue_syncs
 WHERE provider IS NOT NULL
 ORDER BY provider, id DESC
