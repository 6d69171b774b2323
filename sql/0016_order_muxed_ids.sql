-- An order's M-address carries a random muxed id of its own, not its primary key: sequential
-- ids let anyone reach every pending order by counting (a dust payment with the wrong amount to
-- M(system, n) would send order n to refund). 63 random bits (a bigint), drawn in the database
-- so every writer gets one; UNIQUE catches the (astronomically unlikely) collision.
CREATE FUNCTION billpay_random_muxed_id() RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    SELECT ('x' || substr(replace(gen_random_uuid()::text, '-', ''), 1, 16))::bit(64)::bigint
           & 9223372036854775807;
$$;

ALTER TABLE bill_payments
    ADD COLUMN muxed_id bigint NOT NULL DEFAULT billpay_random_muxed_id();
ALTER TABLE bill_payments ADD CONSTRAINT bill_payments_muxed_id_key UNIQUE (muxed_id);
