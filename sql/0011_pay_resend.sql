-- A pay request re-sent under the same reference (billpay/bills/requery.py): recorded as its own
-- operation so "one pay attempt per (provider, reference)" stays true, and at most one resend
-- per reference, enforced here rather than trusted to the code.
ALTER TABLE provider_attempts DROP CONSTRAINT provider_attempts_operation_check;
ALTER TABLE provider_attempts ADD CONSTRAINT provider_attempts_operation_check
    CHECK (operation IN ('verify', 'pay', 'requery', 'catalogue', 'resend'));
CREATE UNIQUE INDEX provider_attempts_resend_reference_key ON provider_attempts (provider, reference)
    WHERE operation = 'resend';
