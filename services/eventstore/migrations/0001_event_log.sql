-- The append-only event log, its concurrency anchors and uniqueness claims.

CREATE TABLE events (
    global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The writing transaction. Readers order by (tx_id, global_position) and read only
    -- transactions older than every running one: that is what makes tailing gap-safe.
    tx_id           xid8        NOT NULL DEFAULT pg_current_xact_id(),
    stream_id       text        NOT NULL,
    stream_version  bigint      NOT NULL CHECK (stream_version > 0),
    event_id        uuid        NOT NULL UNIQUE,
    type            text        NOT NULL,
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_id, stream_version)
);

CREATE INDEX events_commit_order ON events (tx_id, global_position);
CREATE INDEX events_type ON events (type, global_position);

-- One row per stream: its current version.
CREATE TABLE streams (
    stream_id text   PRIMARY KEY,
    version   bigint NOT NULL
);

-- Uniqueness that spans streams (account names, token names per account), held by the stream that
-- claimed it and changed only inside an append, so a decision and its constraint commit together.
CREATE TABLE uniqueness_claims (
    claim      text        PRIMARY KEY,
    stream_id  text        NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX uniqueness_claims_prefix ON uniqueness_claims (claim text_pattern_ops);

-- The log is append-only: a row, once written, is never changed or removed.
CREATE FUNCTION events_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % on events is not allowed', TG_OP
        USING ERRCODE = 'TLI01';
END $$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_immutable();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_immutable();

-- The append itself (tl_append, tl_stored_retry) is not defined here: its one current definition is
-- functions/tl_append.sql, applied after the numbered migrations on every start.
