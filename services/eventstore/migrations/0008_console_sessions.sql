-- The web console's sessions (services/console/sessions.py). The cookie holds a random id; a row
-- holds only its SHA-256, so reading this table yields no usable cookie. The token the session acts
-- with is kept as its secret hash (the HMAC under the pepper that rm_token_secrets keeps already),
-- never as the secret: every request verifies that hash through the token verifier, so revoking
-- the token or disabling its account ends the session at once.
CREATE TABLE console_sessions (
    id_hash bytea PRIMARY KEY,
    token_id uuid NOT NULL,
    account_id uuid NOT NULL,
    secret_hash text NOT NULL,
    created_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX console_sessions_token ON console_sessions (token_id);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
