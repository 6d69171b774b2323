-- Client apps of the HTTP API (billpay/api): one row per client, its key stored only as a
-- SHA-256 hash (keys are 256-bit random, so a fast hash is enough: nothing to brute-force).
-- A client's webhook signing secret is never stored either: it is HMAC(BILLPAY_WEBHOOK_SECRET,
-- webhook_salt), printed once by `billpay apikey create` and re-derived to sign each delivery.
CREATE TABLE api_clients (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    key_prefix    text NOT NULL,          -- the first characters of the key, to tell keys apart
    key_hash      text NOT NULL UNIQUE,   -- sha256 hex of the whole key
    webhook_url   text,
    webhook_salt  text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);
-- One live client per name; a revoked name can be issued again.
CREATE UNIQUE INDEX api_clients_live_name ON api_clients (name) WHERE revoked_at IS NULL;

-- The client that created an order (NULL: created from the CLI or the demo). A client reads
-- only its own orders.
ALTER TABLE bill_payments ADD COLUMN api_client_id bigint REFERENCES api_clients (id);
CREATE INDEX bill_payments_client_history ON bill_payments (api_client_id, id DESC)
    WHERE api_client_id IS NOT NULL;

-- POST /api/bills/pay with an Idempotency-Key: the same key and body return the same order.
CREATE TABLE api_idempotency_keys (
    api_client_id   bigint NOT NULL REFERENCES api_clients (id),
    idempotency_key text NOT NULL,
    request_hash    text NOT NULL,        -- sha256 of the canonical request body
    bill_payment_id bigint NOT NULL REFERENCES bill_payments (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (api_client_id, idempotency_key)
);
