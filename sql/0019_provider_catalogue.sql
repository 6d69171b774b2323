-- The provider catalogue (issue 14): what each provider lists, as last synced, mapped onto our
-- billers and product codes. Intake, validation, pricing and routing read it (through
-- billpay.store.catalogue); `billpay catalogue sync` and the daily sync-catalogue flow write it.
-- A fresh database is seeded from the built-in table in billpay/catalogue.py (a 'seeded' sync).


-- Our billers, by our codes (what a client orders). Created by the seed or by a sync that finds
-- a new VTpass serviceID (VTpass's serviceIDs are our code scheme).
CREATE TABLE catalogue_billers (
    code        text PRIMARY KEY CHECK (code ~ '^[a-z0-9][a-z0-9-]{0,63}$'),
    bill_type   text NOT NULL
                CHECK (bill_type IN ('electricity', 'airtime', 'data', 'cable_tv', 'water')),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per biller a provider lists (VTpass serviceID, Flutterwave biller_code).
-- biller_code NULL: listed but not mapped to one of ours, so never routed (an operator maps it).
-- vanished_at set: a sync no longer found it, so it is not routed there until it comes back.
CREATE TABLE provider_billers (
    provider        text NOT NULL CHECK (provider IN ('vtpass', 'flutterwave')),
    code            text NOT NULL CHECK (length(code) BETWEEN 1 AND 100),
    biller_code     text REFERENCES catalogue_billers (code),
    bill_type       text
                    CHECK (bill_type IN ('electricity', 'airtime', 'data', 'cable_tv', 'water')),
    category        text,   -- the provider's own category (AIRTIME, UTILITYBILLS, tv-subscription)
    name            text NOT NULL CHECK (length(name) <= 200),
    min_amount_kobo bigint CHECK (min_amount_kobo IS NULL OR min_amount_kobo >= 0),
    max_amount_kobo bigint CHECK (max_amount_kobo IS NULL OR max_amount_kobo >= 0),
    fee_kobo        bigint NOT NULL DEFAULT 0 CHECK (fee_kobo >= 0),  -- the provider's charge
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz,  -- NULL: seeded, never confirmed by a sync
    vanished_at     timestamptz,
    PRIMARY KEY (provider, code)
);
-- A provider sells one of our billers under one code at a time.
CREATE UNIQUE INDEX provider_billers_one_code_per_biller
    ON provider_billers (provider, biller_code)
    WHERE biller_code IS NOT NULL AND vanished_at IS NULL;

-- One row per item / variation a provider lists for one of its billers (VTpass variation_code,
-- Flutterwave item_code). product_code is ours (prepaid, postpaid, airtime, water, a data plan or
-- bouquet code); NULL = not mapped, never sold through that provider.
CREATE TABLE provider_items (
    provider        text NOT NULL,
    provider_biller text NOT NULL,
    code            text NOT NULL CHECK (length(code) BETWEEN 1 AND 100),
    product_code    text CHECK (product_code IS NULL OR length(product_code) BETWEEN 1 AND 100),
    name            text NOT NULL CHECK (length(name) <= 200),
    amount_kobo     bigint CHECK (amount_kobo IS NULL OR amount_kobo > 0),  -- NULL: customer sets
    fee_kobo        bigint NOT NULL DEFAULT 0 CHECK (fee_kobo >= 0),
    label           text,   -- Flutterwave label_name (what the customer id is called)
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz,
    vanished_at     timestamptz,
    PRIMARY KEY (provider, provider_biller, code),
    FOREIGN KEY (provider, provider_biller) REFERENCES provider_billers (provider, code)
);
CREATE UNIQUE INDEX provider_items_one_code_per_product
    ON provider_items (provider, provider_biller, product_code)
    WHERE product_code IS NOT NULL AND vanished_at IS NULL;

-- Every seed, sync and operator mapping, newest last. The id of the newest row that changed
-- something is the catalogue's version: a process reloads its cached catalogue when it moves.
CREATE TABLE catalogue_syncs (
    id          bigserial PRIMARY KEY,
    provider    text,          -- NULL: the seed
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    outcome     text NOT NULL
                CHECK (outcome IN ('seeded', 'applied', 'unchanged', 'failed', 'refused',
                                   'mapped')),
    billers     integer NOT NULL DEFAULT 0,  -- provider billers seen
    items       integer NOT NULL DEFAULT 0,  -- provider items seen
    added       integer NOT NULL DEFAULT 0,
    changed     integer NOT NULL DEFAULT 0,
    vanished    integer NOT NULL DEFAULT 0,
    detail      text
);
