-- The usage log: every token verification (services/auth/usage_log.py writes it, with COPY, in
-- batches). A log of its own beside the event log: one row per verification is far more than the
-- event log's per-stream versions, hash chain and projections are meant to carry.
--
-- Writers serialise their batches with a transaction-level advisory lock (the two-key form, so it
-- never meets the event store's one-key stream locks), taken before the COPY draws any position:
-- positions are drawn in commit order, so the rows any reader sees are a prefix of the log and a
-- cursor on position (the usage endpoint, the export) never skips a row that commits later.
--
-- A row names the token when the presented secret belongs to one (accepted, or rejected as revoked,
-- expired, disabled, rotated out or out of scope); otherwise token_id and account_id are null and
-- presented_hash is a keyed hash of what was presented. The presented value itself is never stored.

CREATE TABLE usage_log (
    position       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at    timestamptz NOT NULL,
    outcome        text        NOT NULL CHECK (outcome IN ('accepted', 'rejected')),
    reason         text        CHECK ((outcome = 'accepted') = (reason IS NULL)),
    token_id       uuid,
    account_id     uuid,
    presented_hash bytea       CHECK (presented_hash IS NULL OR octet_length(presented_hash) = 32),
    operation      text        NOT NULL,
    client_address text,
    user_agent     text,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((token_id IS NULL) = (presented_hash IS NOT NULL))
);

-- The usage timeline of one token (GET .../access-tokens/{tokenId}/usage).
CREATE INDEX usage_log_token ON usage_log (token_id, position) WHERE token_id IS NOT NULL;

-- One row per stored batch, written in the batch's transaction: a flush retried after an error
-- whose commit may have succeeded finds its batch here and is not stored twice.
CREATE TABLE usage_log_batches (
    batch_id    uuid        PRIMARY KEY,
    row_count   int         NOT NULL CHECK (row_count > 0),
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- Append-only, like the event log (same SQLSTATE, TLI01).
CREATE FUNCTION usage_log_is_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the usage log is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'TLI01';
END $$;

CREATE TRIGGER usage_log_append_only
    BEFORE UPDATE OR DELETE ON usage_log
    FOR EACH ROW EXECUTE FUNCTION usage_log_is_immutable();

CREATE TRIGGER usage_log_no_truncate
    BEFORE TRUNCATE ON usage_log
    FOR EACH STATEMENT EXECUTE FUNCTION usage_log_is_immutable();

CREATE TRIGGER usage_log_batches_append_only
    BEFORE UPDATE OR DELETE ON usage_log_batches
    FOR EACH ROW EXECUTE FUNCTION usage_log_is_immutable();

CREATE TRIGGER usage_log_batches_no_truncate
    BEFORE TRUNCATE ON usage_log_batches
    FOR EACH STATEMENT EXECUTE FUNCTION usage_log_is_immutable();
