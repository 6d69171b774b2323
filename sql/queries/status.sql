-- What `billpay status` reads (billpay/store/status.py): is the pipeline moving? Each query is
-- cheap enough for a cron job every minute: the bill queries use the partial indexes of
-- sql/0001_schema.sql (their terminal-state list is the one of billpay/states.py; a unit test
-- checks it), the newest payment is read by primary key.

-- name: status_clock
SELECT now();

-- name: status_stages
SELECT stage, last_run_at, last_ok, last_success_at, last_failure_at, last_error, runs,
       failures, last_summary
  FROM pipeline_stages
 ORDER BY stage;

-- name: status_ingest_cursors
-- The stored Horizon paging token per account and when it last moved (it moves only when a
-- page brought operations, so an old cursor on a quiet account is normal).
SELECT account, cursor, updated_at FROM ingest_cursors ORDER BY account;

-- name: status_newest_payment
-- The last payment ingested: when we stored it and when its ledger closed.
SELECT id, received_at, ledger_time FROM incoming_payments ORDER BY id DESC LIMIT 1;

-- name: status_open_bills_by_status
-- Bills per non-terminal status (terminal: completed, refunded, expired).
SELECT status, count(*)
  FROM bill_payments
 WHERE status NOT IN ('completed', 'refunded', 'expired')
 GROUP BY status;

-- name: status_oldest_open_bill
-- The non-terminal bill that has waited longest since it last changed, leaving out unpaid
-- orders still inside their payment window (they wait for the customer, not for us).
SELECT reference, status, created_at, updated_at
  FROM bill_payments
 WHERE status NOT IN ('completed', 'refunded', 'expired')
   AND NOT (status = 'pending_payment' AND expires_at >= now())
 ORDER BY updated_at, id
 LIMIT 1;

-- name: status_queue_depths
-- Rows each stage could claim right now (the queue views of sql/0002_views_functions.sql).
SELECT 'queue_expire_orders', count(*) FROM queue_expire_orders
UNION ALL SELECT 'queue_match_payments', count(*) FROM queue_match_payments
UNION ALL SELECT 'queue_verify_accounts', count(*) FROM queue_verify_accounts
UNION ALL SELECT 'queue_pay_bills', count(*) FROM queue_pay_bills
UNION ALL SELECT 'queue_requery_bills', count(*) FROM queue_requery_bills
UNION ALL SELECT 'queue_retry_bills', count(*) FROM queue_retry_bills
UNION ALL SELECT 'queue_bills_to_refund', count(*) FROM queue_bills_to_refund
UNION ALL SELECT 'queue_refunds', count(*) FROM queue_refunds
UNION ALL SELECT 'queue_notifications', count(*) FROM queue_notifications;

-- name: status_refunds_by_status
-- Open and set-aside refunds (confirmed ones are history and only grow).
SELECT status, count(*) FROM refunds WHERE status <> 'confirmed' GROUP BY status;

-- name: status_unsent_notifications
-- Notifications not delivered: pending (due or backing off) and failed (gave up).
SELECT status, count(*) FROM notifications WHERE status <> 'sent' GROUP BY status;

-- name: status_quarantine
-- Horizon records ingestion could not read and set aside, not yet resolved (partial index).
SELECT count(*) AS open, min(created_at) AS oldest_at
  FROM ingest_quarantine
 WHERE resolved_at IS NULL;
