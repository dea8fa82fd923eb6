-- Tamper evidence (see services/audit): a hash chain per stream, computed by tl_append in the append
-- transaction, and chained checkpoints over the global log, sealed after commit by tl_checkpoint.
--
-- Event hash. events.hash = sha256(previous event's hash in the stream (nothing for version 1)
-- || digest), where digest = sha256 of the netstring-encoded ("<length>:<text>,") fields
--   'tl1', stream_id, stream_version, event_id, type, global_position, tx_id,
--   recorded_at (microseconds since the Unix epoch), data::text, metadata::text
-- jsonb::text is PostgreSQL's canonical text of the stored value (equal jsonb, equal text), so the
-- hash covers exactly what is stored, and services/audit/chain.py recomputes it from the row. Because
-- position, transaction id and recording time are in it, moving an event in the global order breaks
-- its stream's chain too. Digests are computed for a whole append in one statement; only the cheap
-- chaining step runs per event. streams.head_hash caches the hash of each stream's latest event, so
-- an append reads the previous hash with the version it already reads: no extra lookup.
--
-- Checkpoints. log_checkpoints row n covers the events after checkpoint n-1's cursor up to its own
-- (tx_id, position) cursor, in (tx_id, position) order, and its hash is
--   sha256('tlc1' || hash of checkpoint n-1 || int8 n || for each event: int8 position || event hash)
-- tl_checkpoint seals only the gap-safe committed prefix (transactions older than every running one,
-- as the log tailers read), so writers are never serialised or blocked: checkpointers take an
-- advisory lock among themselves only. Nothing seals on its own: `tokenledger audit checkpoint` (or
-- services.audit.checkpoints.seal, which a periodic worker may call) does.
--
-- What this detects: any change made with SQL that does not also recompute hashes, and, for sealed
-- events, any change at all short of rewriting every later checkpoint. Someone who can rewrite the
-- whole tail consistently is caught only against a checkpoint hash kept outside the database (the
-- head hash `tokenledger audit verify` prints).

ALTER TABLE events ADD COLUMN hash bytea;
ALTER TABLE streams ADD COLUMN head_hash bytea;

CREATE FUNCTION tl_netstring(p_text text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN length(p_text)::text || ':' || p_text || ',';

CREATE FUNCTION tl_event_digest(
    p_stream_id       text,
    p_stream_version  bigint,
    p_event_id        uuid,
    p_type            text,
    p_global_position bigint,
    p_tx_id           xid8,
    p_recorded_at     timestamptz,
    p_data            jsonb,
    p_metadata        jsonb
) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE
RETURN sha256(convert_to(
    tl_netstring('tl1')
    || tl_netstring(p_stream_id)
    || tl_netstring(p_stream_version::text)
    || tl_netstring(p_event_id::text)
    || tl_netstring(p_type)
    || tl_netstring(p_global_position::text)
    || tl_netstring(p_tx_id::text)
    || tl_netstring((extract(epoch FROM p_recorded_at) * 1000000)::bigint::text)
    || tl_netstring(p_data::text)
    || tl_netstring(p_metadata::text),
    'UTF8'));

CREATE FUNCTION tl_chain(p_previous bytea, p_digest bytea) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN sha256(coalesce(p_previous, ''::bytea) || p_digest);

CREATE FUNCTION tl_event_hash(
    p_previous        bytea,
    p_stream_id       text,
    p_stream_version  bigint,
    p_event_id        uuid,
    p_type            text,
    p_global_position bigint,
    p_tx_id           xid8,
    p_recorded_at     timestamptz,
    p_data            jsonb,
    p_metadata        jsonb
) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE
RETURN tl_chain(p_previous, tl_event_digest(p_stream_id, p_stream_version, p_event_id, p_type,
                                            p_global_position, p_tx_id, p_recorded_at, p_data,
                                            p_metadata));

-- Backfill: the events stored before this migration are chained as they are now.
ALTER TABLE events DISABLE TRIGGER events_append_only;
DO $$
DECLARE
    r        record;
    v_stream text;
    v_hash   bytea;
BEGIN
    FOR r IN SELECT * FROM events ORDER BY stream_id, stream_version LOOP
        IF v_stream IS DISTINCT FROM r.stream_id THEN
            v_stream := r.stream_id;
            v_hash := NULL;
        END IF;
        v_hash := tl_event_hash(v_hash, r.stream_id, r.stream_version, r.event_id, r.type,
                                r.global_position, r.tx_id, r.recorded_at, r.data, r.metadata);
        UPDATE events SET hash = v_hash WHERE global_position = r.global_position;
    END LOOP;
END $$;
ALTER TABLE events ENABLE TRIGGER events_append_only;
UPDATE streams s SET head_hash = e.hash
FROM events e WHERE e.stream_id = s.stream_id AND e.stream_version = s.version;

-- Lookups of the streams related to an account (its tokens, its teams) for point-in-time reads
-- (services/audit/as_of.py). Partial: only these two, rare, event types pay for it on append.
CREATE INDEX events_account_links ON events ((data ->> 'account_id'), type)
    WHERE type IN ('token.issued', 'team.member_added');

-- tl_append computes each event's hash, and draws its position itself so that the hash, which covers
-- the position, is known before the row is inserted: see functions/tl_append.sql.

-- Chained checkpoints over the global log (see the top of this file). Append-only like the log.
CREATE TABLE log_checkpoints (
    checkpoint    bigint      PRIMARY KEY CHECK (checkpoint > 0),
    last_tx_id    xid8        NOT NULL,
    last_position bigint      NOT NULL,
    event_count   bigint      NOT NULL CHECK (event_count > 0),
    hash          bytea       NOT NULL,
    sealed_at     timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION log_checkpoints_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'log checkpoints are append-only: % on log_checkpoints is not allowed', TG_OP
        USING ERRCODE = 'TLI01';
END $$;

CREATE TRIGGER log_checkpoints_append_only
    BEFORE UPDATE OR DELETE ON log_checkpoints
    FOR EACH ROW EXECUTE FUNCTION log_checkpoints_are_immutable();

CREATE TRIGGER log_checkpoints_no_truncate
    BEFORE TRUNCATE ON log_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION log_checkpoints_are_immutable();

-- Seals the next checkpoint over at most p_max_events committed events past the last one; returns
-- it, or no row when no committed event is waiting. Call it in READ COMMITTED (the default): it
-- must see the checkpoint another caller sealed while it waited for the lock.
CREATE FUNCTION tl_checkpoint(p_max_events int DEFAULT 10000)
RETURNS TABLE (checkpoint bigint, last_tx_id bigint, last_position bigint, event_count bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_number   bigint;
    v_previous bytea;
    v_after_tx xid8;
    v_after    bigint;
    v_count    bigint;
    v_last_tx  xid8;
    v_last     bigint;
    v_items    bytea;
BEGIN
    IF p_max_events IS NULL OR p_max_events < 1 THEN
        RAISE EXCEPTION 'p_max_events must be at least 1' USING ERRCODE = '22023';
    END IF;
    PERFORM pg_advisory_xact_lock(1953260899, 0);  -- 0x746C6163 "tlac": one checkpointer at a time

    SELECT c.checkpoint, c.hash, c.last_tx_id, c.last_position
      INTO v_number, v_previous, v_after_tx, v_after
      FROM log_checkpoints c ORDER BY c.checkpoint DESC LIMIT 1;

    WITH batch AS MATERIALIZED (
        SELECT e.tx_id, e.global_position, e.hash
        FROM events e
        WHERE (e.tx_id, e.global_position) > (coalesce(v_after_tx, '0'::xid8), coalesce(v_after, 0))
          AND e.tx_id < pg_snapshot_xmin(pg_current_snapshot())
        ORDER BY e.tx_id, e.global_position
        LIMIT p_max_events
    ), tail AS (
        SELECT b.tx_id, b.global_position FROM batch b
        ORDER BY b.tx_id DESC, b.global_position DESC LIMIT 1
    )
    SELECT (SELECT count(*) FROM batch),
           (SELECT t.tx_id FROM tail t),
           (SELECT t.global_position FROM tail t),
           (SELECT string_agg(int8send(b.global_position) || coalesce(b.hash, ''::bytea), ''::bytea
                              ORDER BY b.tx_id, b.global_position) FROM batch b)
      INTO v_count, v_last_tx, v_last, v_items;

    IF v_count = 0 THEN
        RETURN;
    END IF;
    v_number := coalesce(v_number, 0) + 1;
    INSERT INTO log_checkpoints (checkpoint, last_tx_id, last_position, event_count, hash)
    VALUES (v_number, v_last_tx, v_last, v_count,
            sha256(convert_to('tlc1', 'UTF8') || coalesce(v_previous, ''::bytea)
                   || int8send(v_number) || v_items));
    RETURN QUERY SELECT v_number, v_last_tx::text::bigint, v_last, v_count;
END $$;
