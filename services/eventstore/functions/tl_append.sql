-- The append: tl_append and its retry half, tl_stored_retry. This is their one current definition,
-- applied by the migrator (services/eventstore/migrate.py) after the numbered migrations, on every
-- start, under the migration lock: change them here, not in a migration. CREATE OR REPLACE keeps the
-- signature, so a database of any release ends with exactly this definition.
--
-- tl_append appends events to one or more streams in one transaction, in one round trip.
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
-- Each event's hash (see migrations/0004_hash_chain.sql) is computed here, in the append
-- transaction: positions are drawn in request order, as the identity default would, so that the
-- hash, which covers the position, is known before the row is inserted.
-- It does not NOTIFY: a notifying transaction holds a database-wide lock until its commit is flushed,
-- which made every append wait for the one before it; the caller announces the commit afterwards
-- (services/eventstore/commit_notices.py), and readers poll as well.
CREATE OR REPLACE FUNCTION tl_append(
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
    v_current   bigint[] := '{}';
    v_heads     bytea[] := '{}';
    v_expected  bigint;
    v_claim     text;
    v_tx        xid8;
    v_now       timestamptz := now();
    v_versions  bigint[] := '{}';
    v_positions bigint[] := '{}';
    v_digests   bytea[];
    v_hashes    bytea[] := '{}';
    v_idx       int;
    i           int;
BEGIN
    -- One statement each for the locks (in stream order, so two appends never wait on each other
    -- in a cycle) and for the streams' versions and chain heads (in request order).
    PERFORM pg_advisory_xact_lock(hashtextextended(l.s, 0))
       FROM (SELECT s FROM unnest(p_streams) AS s ORDER BY s) AS l;

    SELECT coalesce(array_agg(coalesce(s.version, 0) ORDER BY u.ord), '{}'),
           coalesce(array_agg(s.head_hash ORDER BY u.ord), '{}')
      INTO v_current, v_heads
      FROM unnest(p_streams) WITH ORDINALITY AS u (stream_id, ord)
      LEFT JOIN streams s ON s.stream_id = u.stream_id;

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

    -- Claims: released first, then taken in one statement (in request order), then one look for a
    -- claim that another stream holds. Most appends have neither: no statement runs then.
    IF coalesce(cardinality(p_releases), 0) > 0 THEN
        DELETE FROM uniqueness_claims c WHERE c.claim = ANY (p_releases);
    END IF;
    IF coalesce(cardinality(p_claims), 0) > 0 THEN
        INSERT INTO uniqueness_claims (claim, stream_id)
        SELECT u.claim, u.stream_id
          FROM unnest(p_claims, p_claim_streams) WITH ORDINALITY AS u (claim, stream_id, ord)
         ORDER BY u.ord
        ON CONFLICT (claim) DO NOTHING;
        SELECT u.claim INTO v_claim
          FROM unnest(p_claims, p_claim_streams) WITH ORDINALITY AS u (claim, stream_id, ord)
          LEFT JOIN uniqueness_claims c ON c.claim = u.claim
         WHERE c.stream_id IS DISTINCT FROM u.stream_id
         ORDER BY u.ord
         LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'uniqueness claim % is held by another stream', v_claim
                USING ERRCODE = 'TLU01',
                      DETAIL = json_build_object('claim', v_claim)::text;
        END IF;
    END IF;

    -- Positions (drawn in request order, as the identity default did), versions and digests in
    -- one statement each, then the chain, per stream, in request order. Malformed arrays (an event
    -- without a stream, type or id) leave NULLs that the INSERT refuses, as the unnest of 0001 did.
    v_tx := pg_current_xact_id();
    v_positions := ARRAY(
        SELECT nextval('events_global_position_seq')
        FROM generate_series(1, coalesce(greatest(cardinality(p_event_stream), cardinality(p_event_ids),
                                                  cardinality(p_types), cardinality(p_data),
                                                  cardinality(p_metadata)), 0)));
    SELECT array_agg(x.version ORDER BY x.ord),
           array_agg(tl_event_digest(p_streams[x.idx], x.version, x.id, x.type, v_positions[x.ord],
                                     v_tx, v_now, x.data, x.meta) ORDER BY x.ord)
      INTO v_versions, v_digests
      FROM (SELECT u.*, v_current[u.idx] + row_number() OVER (PARTITION BY u.idx ORDER BY u.ord) AS version
            FROM unnest(p_event_stream, p_event_ids, p_types, p_data, p_metadata)
                 WITH ORDINALITY AS u (idx, id, type, data, meta, ord)) x;
    FOR i IN 1 .. cardinality(v_positions) LOOP
        v_idx := p_event_stream[i];
        IF v_idx BETWEEN 1 AND cardinality(p_streams) THEN
            v_heads[v_idx] := tl_chain(v_heads[v_idx], v_digests[i]);
            v_hashes[i] := v_heads[v_idx];
        END IF;
    END LOOP;

    RETURN QUERY
    INSERT INTO events AS e (global_position, tx_id, stream_id, stream_version, event_id, type,
                             data, metadata, recorded_at, hash)
    OVERRIDING SYSTEM VALUE
    SELECT u.position, v_tx, p_streams[u.idx], u.version, u.id, u.type, u.data, u.meta, v_now, u.hash
    FROM unnest(p_event_stream, p_event_ids, p_types, p_data, p_metadata,
                v_versions, v_positions, v_hashes)
         WITH ORDINALITY AS u (idx, id, type, data, meta, version, position, hash, ord)
    ORDER BY u.ord
    RETURNING e.event_id, e.global_position, e.stream_version, e.tx_id::text::bigint;

    INSERT INTO streams AS s (stream_id, version, head_hash)
    SELECT p_streams[u.idx], v_current[u.idx] + count(*), v_heads[u.idx]
    FROM unnest(p_event_stream) AS u (idx)
    GROUP BY u.idx
    ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version, head_hash = EXCLUDED.head_hash;

END $$;

-- The idempotent-retry half of tl_append: succeeds only when every event id is stored, each in its
-- requested stream, in the requested order and at consecutive versions (at the expected place when
-- one was given), with the same type; otherwise it is the caller reusing ids, an error.
CREATE OR REPLACE FUNCTION tl_stored_retry(
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
