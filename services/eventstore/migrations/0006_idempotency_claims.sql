-- Idempotency keys become claims only (see services/api/idempotency.py): no response is stored or
-- replayed any more, since a retry runs its route again (authorisation first) and gets its answer
-- from the log. Rows are scoped to the credential, method and route that used the key, not to the
-- account: the old rows (per account, some holding sealed token secrets) are dropped.

DELETE FROM idempotency_keys;

ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_check;
ALTER TABLE idempotency_keys DROP COLUMN response_status;
ALTER TABLE idempotency_keys DROP COLUMN response_content_type;
ALTER TABLE idempotency_keys DROP COLUMN response_body;
ALTER TABLE idempotency_keys RENAME COLUMN principal TO scope;
-- When the current run claimed the row: a pending claim older than the timeout is abandoned.
ALTER TABLE idempotency_keys ADD COLUMN claimed_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_completed
    CHECK (state = 'pending' OR completed_at IS NOT NULL);
