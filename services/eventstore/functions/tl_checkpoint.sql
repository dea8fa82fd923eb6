-- The checkpoint sealer's one step, tl_checkpoint: its one current definition, applied by the
-- migrator (services/eventstore/migrate.py) after the numbered migrations, on every start, under
-- the migration lock (as functions/tl_append.sql). It seals the next checkpoint over the gap-safe
-- committed prefix of the log (transactions older than every running one), chained to the one
-- before, one checkpointer at a time; see migrations/0004_hash_chain.sql for the chain's format.

CREATE OR REPLACE FUNCTION tl_checkpoint(p_max_events int DEFAULT 10000)
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
    -- sealed_at is the clock now, after the batch was read: every event it covers committed
    -- before, so began (its recorded_at) before. The default, now(), is when this call's
    -- transaction began, which may precede an event's transaction that committed in time for the
    -- batch: verify would then read that event as inserted after the seal.
    INSERT INTO log_checkpoints (checkpoint, last_tx_id, last_position, event_count, hash, sealed_at)
    VALUES (v_number, v_last_tx, v_last, v_count,
            sha256(convert_to('tlc1', 'UTF8') || coalesce(v_previous, ''::bytea)
                   || int8send(v_number) || v_items),
            clock_timestamp());
    RETURN QUERY SELECT v_number, v_last_tx::text::bigint, v_last, v_count;
END $$;
