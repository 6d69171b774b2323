-- Engine set-up: the statements billpay/store/engine.py runs.
-- Loaded by billpay/store/queries.py.

-- name: database_exists
-- Whether the database :name exists (run on the maintenance database).
SELECT 1 FROM pg_database WHERE datname = :name;

-- name: create_database
-- Create the database {database} (an identifier; DDL takes no bind parameters).
CREATE DATABASE "{database}";

-- name: drop_database
-- Drop the database {database}, disconnecting its sessions (the demo's and the benchmark's
-- fresh start; run on the maintenance database, autocommit).
DROP DATABASE IF EXISTS "{database}" WITH (FORCE);

-- name: ping
-- The database answers (GET /healthz).
SELECT 1;
