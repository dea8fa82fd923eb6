-- tl_append as migration 0001 defined it, before the hash chain (migration 0004): the baseline
-- against which bench.audit measures what the chain costs an append. Not part of the schema; the
-- current definition is services/eventstore/functions/tl_append.sql.
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
