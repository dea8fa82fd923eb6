-- Where each relay (services/relay: log -> Kafka) has got to in the log. The cursor is the last event
-- whose records the broker acknowledged (or that needs no record); it only moves forward, and only
-- the relay holding the relay's advisory lock writes it. No row: the relay starts at the beginning.

CREATE TABLE relay_checkpoints (
    relay      text        PRIMARY KEY,
    tx_id      bigint      NOT NULL,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
