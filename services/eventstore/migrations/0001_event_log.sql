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

-- Appends events to one or more streams in one transaction, in one round trip.
--
-- p_streams / p_expected: the distinct streams written and each one's expected version:
--   -1 any, -2 no stream, -3 stream exists, n >= 0 exactly n events so far. A stream may have no
--   events: it is then only a condition (locked and version-checked, not written), which is how a
--   command on one aggregate depends on another one not having changed (e.g. the account of a token).
-- p_event_stream: for each event, the 1-based index of its stream in p_streams.
-- p_claims / p_claim_streams: uniqueness claims to take; p_releases: claims to give up first.
--
-- Stream locks are advisory locks taken, in a fixed order, BEFORE the transaction writes anything.
-- A transaction gets its id at its first write, so two appends to one stream get transaction ids in
-- the order they hold the lock: the (tx_id, position) read order then agrees with stream versions.
-- Expected versions are checked before any position is drawn, so a losing writer leaves no gap.
-- A retry whose event ids are already stored, in the same streams at the places they would take,
-- returns the stored rows (idempotent append); event ids stored anywhere else are an error.
CREATE FUNCTION tl_append(
    p_streams       text[],
    p_expected      bigint[],
    p_event_stream  int[],
    p_event_ids     uuid[],
    p_types         text[],
    p_data          jsonb[],
    p_metadata      jsonb[],
    p_claims        text[],
    p_claim_streams text[],
    p_releases      text[]
) RETURNS TABLE (event_id uuid, global_position bigint, stream_version bigint, tx_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_current  bigint[] := '{}';
    v_version  bigint;
    v_expected bigint;
    v_stream   text;
    v_claim    text;
    v_owner    text;
    v_position bigint;
    i          int;
BEGIN
    FOR v_stream IN SELECT s FROM unnest(p_streams) AS s ORDER BY s LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended(v_stream, 0));
    END LOOP;

    FOR i IN 1 .. cardinality(p_streams) LOOP
        SELECT s.version INTO v_version FROM streams s WHERE s.stream_id = p_streams[i];
        v_current := v_current || coalesce(v_version, 0);
    END LOOP;

    IF EXISTS (SELECT 1 FROM events e WHERE e.event_id = ANY (p_event_ids)) THEN
        RETURN QUERY SELECT * FROM tl_stored_retry(
            p_streams, p_expected, p_event_stream, p_event_ids, p_types);
        RETURN;
    END IF;

    FOR i IN 1 .. cardinality(p_streams) LOOP
        v_expected := p_expected[i];
        IF (v_expected = -2 AND v_current[i] <> 0)
           OR (v_expected = -3 AND v_current[i] = 0)
           OR (v_expected >= 0 AND v_current[i] <> v_expected) THEN
            RAISE EXCEPTION 'wrong expected version for stream %', p_streams[i]
                USING ERRCODE = 'TLV01',
                      DETAIL = json_build_object('stream_id', p_streams[i],
                                                 'expected', v_expected,
                                                 'actual', v_current[i])::text;
        END IF;
    END LOOP;

    DELETE FROM uniqueness_claims c WHERE c.claim = ANY (p_releases);
    FOR i IN 1 .. coalesce(cardinality(p_claims), 0) LOOP
        v_claim := p_claims[i];
        INSERT INTO uniqueness_claims (claim, stream_id) VALUES (v_claim, p_claim_streams[i])
            ON CONFLICT (claim) DO NOTHING;
        SELECT c.stream_id INTO v_owner FROM uniqueness_claims c WHERE c.claim = v_claim;
        IF v_owner <> p_claim_streams[i] THEN
            RAISE EXCEPTION 'uniqueness claim % is held by another stream', v_claim
                USING ERRCODE = 'TLU01',
                      DETAIL = json_build_object('claim', v_claim)::text;
        END IF;
    END LOOP;

    RETURN QUERY
    INSERT INTO events AS e (stream_id, stream_version, event_id, type, data, metadata)
    SELECT p_streams[u.idx],
           v_current[u.idx] + row_number() OVER (PARTITION BY u.idx ORDER BY u.ord),
           u.id, u.type, u.data, u.meta
    FROM unnest(p_event_stream, p_event_ids, p_types, p_data, p_metadata)
         WITH ORDINALITY AS u (idx, id, type, data, meta, ord)
    ORDER BY u.ord
    RETURNING e.event_id, e.global_position, e.stream_version, e.tx_id::text::bigint;

    INSERT INTO streams AS s (stream_id, version)
    SELECT p_streams[u.idx], v_current[u.idx] + count(*)
    FROM unnest(p_event_stream) AS u (idx)
    GROUP BY u.idx
    ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version;

    SELECT max(e.global_position) INTO v_position FROM events e WHERE e.event_id = ANY (p_event_ids);
    PERFORM pg_notify('tokenledger_events',
                      pg_current_xact_id()::text || ':' || v_position::text);
END $$;

-- The idempotent-retry half of tl_append: succeeds only when every event id is stored, each in its
-- requested stream, in the requested order and at consecutive versions (at the expected place when
-- one was given), with the same type; otherwise it is the caller reusing ids, an error.
CREATE FUNCTION tl_stored_retry(
    p_streams      text[],
    p_expected     bigint[],
    p_event_stream int[],
    p_event_ids    uuid[],
    p_types        text[]
) RETURNS TABLE (event_id uuid, global_position bigint, stream_version bigint, tx_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_matches int;
BEGIN
    WITH wanted AS (
        SELECT u.idx, u.id, u.type, u.ord,
               row_number() OVER (PARTITION BY u.idx ORDER BY u.ord) AS nth
        FROM unnest(p_event_stream, p_event_ids, p_types) WITH ORDINALITY AS u (idx, id, type, ord)
    ), stored AS (
        SELECT w.*, e.stream_id, e.stream_version, e.type AS stored_type,
               first_value(e.stream_version) OVER (PARTITION BY w.idx ORDER BY w.ord) AS first_version
        FROM wanted w JOIN events e ON e.event_id = w.id
    )
    SELECT count(*) INTO v_matches FROM stored s
    WHERE s.stream_id = p_streams[s.idx]
      AND s.stored_type = s.type
      AND s.stream_version = s.first_version + s.nth - 1
      AND (p_expected[s.idx] < 0 OR s.first_version = p_expected[s.idx] + 1)
      AND (p_expected[s.idx] <> -2 OR s.first_version = 1);

    IF v_matches <> cardinality(p_event_ids) THEN
        RAISE EXCEPTION 'event ids already stored elsewhere in the log'
            USING ERRCODE = 'TLD01',
                  DETAIL = json_build_object('event_ids', p_event_ids)::text;
    END IF;

    RETURN QUERY
    SELECT e.event_id, e.global_position, e.stream_version, e.tx_id::text::bigint
    FROM unnest(p_event_ids) WITH ORDINALITY AS u (id, ord)
    JOIN events e ON e.event_id = u.id
    ORDER BY u.ord;
END $$;
