-- Customer notifications are written by the database in the same transaction as the transition
-- that causes them (a transactional outbox no code path can forget): completed and refunded.
-- Operator alerts are enqueued by the pipeline (billpay/store/notifications.py).

CREATE FUNCTION bill_payments_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_refund refunds%ROWTYPE;
BEGIN
    IF NEW.status = 'completed' THEN
        INSERT INTO notifications (bill_payment_id, kind, audience, payload, dedupe_key)
        VALUES (NEW.id, 'bill_completed', 'customer', jsonb_build_object(
                    'reference', NEW.reference, 'bill_type', NEW.bill_type, 'biller', NEW.biller,
                    'account_number', NEW.account_number, 'account_type', NEW.account_type,
                    'product_code', NEW.product_code, 'phone', NEW.customer_phone,
                    'email', NEW.customer_email, 'amount_kobo', NEW.amount_kobo,
                    'token', NEW.token, 'units', NEW.units, 'provider', NEW.provider,
                    'provider_reference', NEW.provider_reference),
                'completed:' || NEW.id)
        ON CONFLICT (dedupe_key) DO NOTHING;
    ELSIF NEW.status = 'refunded' THEN
        SELECT * INTO v_refund FROM refunds WHERE bill_payment_id = NEW.id ORDER BY id DESC LIMIT 1;
        INSERT INTO notifications (bill_payment_id, kind, audience, payload, dedupe_key)
        VALUES (NEW.id, 'bill_refunded', 'customer', jsonb_build_object(
                    'reference', NEW.reference, 'bill_type', NEW.bill_type, 'biller', NEW.biller,
                    'account_number', NEW.account_number, 'phone', NEW.customer_phone,
                    'email', NEW.customer_email, 'reason', coalesce(v_refund.reason, NEW.refund_reason),
                    'amount_cngn', v_refund.amount::text, 'destination', v_refund.destination,
                    'tx_hash', v_refund.tx_hash),
                'refunded:' || NEW.id)
        ON CONFLICT (dedupe_key) DO NOTHING;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER bill_payments_notify AFTER UPDATE OF status ON bill_payments
    FOR EACH ROW WHEN (NEW.status IN ('completed', 'refunded') AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION bill_payments_notify();
