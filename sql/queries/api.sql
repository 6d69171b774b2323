-- name: insert_api_client
-- A new client; nothing when a live client already has this name.
INSERT INTO api_clients (name, key_prefix, key_hash, webhook_url, webhook_salt)
SELECT :name, :key_prefix, :key_hash, :webhook_url, :webhook_salt
WHERE NOT EXISTS (SELECT 1 FROM api_clients WHERE name = :name AND revoked_at IS NULL)
ON CONFLICT DO NOTHING
RETURNING id, name, key_prefix, webhook_url, webhook_salt, created_at;

-- name: api_client_by_key_hash
-- The live client a bearer key belongs to.
SELECT id, name, key_prefix, webhook_url, webhook_salt, created_at
FROM api_clients WHERE key_hash = :key_hash AND revoked_at IS NULL;

-- name: api_client_by_id
SELECT id, name, key_prefix, webhook_url, webhook_salt, created_at, revoked_at
FROM api_clients WHERE id = :id;

-- name: revoke_api_client
-- Revoke the live client of this name; its key stops working at once.
UPDATE api_clients SET revoked_at = now()
WHERE name = :name AND revoked_at IS NULL
RETURNING id, name, key_prefix, revoked_at;
