-- An Idempotency-Key replay must answer the original order even when today's rules would refuse
-- its body (issue 14: a fixed price changed by a catalogue sync, a biller no longer sold). The
-- key remembers the hash of the body as sent, so a replay is recognised before the body is
-- validated again, and the answer's warnings, so the replay answers them too.
-- Keys recorded before this migration have no body_hash: they replay by request_hash only.

ALTER TABLE api_idempotency_keys
    ADD COLUMN body_hash text,
    ADD COLUMN warnings  jsonb NOT NULL DEFAULT '[]'::jsonb;
