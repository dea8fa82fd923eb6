-- Idempotency-Key records of POST requests (Stripe semantics): see services/api/idempotency.py.
-- A row is claimed ('pending') before the handler runs and completed with the response afterwards;
-- rows older than 24 h are expired (ignored, overwritten, purged).

CREATE TABLE idempotency_keys (
    principal             text        NOT NULL,
    key                   text        NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
    -- method + path + canonical body hash; another request under the same key is refused.
    request_fingerprint   text        NOT NULL,
    state                 text        NOT NULL CHECK (state IN ('pending', 'completed')),
    -- Which claim holds a pending row: a claim taken over after a timeout cannot complete it.
    claim_id              uuid        NOT NULL,
    response_status       int,
    response_content_type text,
    -- AES-256-GCM sealed (format byte, nonce, ciphertext and tag): may hold a token secret.
    response_body         bytea,
    created_at            timestamptz NOT NULL DEFAULT now(),
    completed_at          timestamptz,
    PRIMARY KEY (principal, key),
    CHECK (state = 'pending'
           OR (response_status IS NOT NULL AND response_body IS NOT NULL AND completed_at IS NOT NULL))
);

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
