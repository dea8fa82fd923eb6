-- A keyed command that changed nothing appends no event its retry could be answered from: its claim
-- keeps what the answer was decided on (the stream, at that version), and a retry under the key is
-- answered as of it (services/idempotency_claims.py).

ALTER TABLE idempotency_keys ADD COLUMN unchanged_stream text;
ALTER TABLE idempotency_keys ADD COLUMN unchanged_version bigint;
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_unchanged
    CHECK ((unchanged_stream IS NULL) = (unchanged_version IS NULL));
