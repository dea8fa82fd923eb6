"""How far each Kafka relay is behind the log, read from its checkpoint: what the metrics show as
relay lag (a relay that never acknowledged a batch has no checkpoint row, and no lag yet)."""

import asyncpg
import msgspec

_LAG_SQL = """
SELECT c.relay, l.events, l.seconds
  FROM relay_checkpoints c
  CROSS JOIN LATERAL (
        SELECT count(*) AS events,
               coalesce(extract(epoch FROM clock_timestamp() - min(e.recorded_at)), 0)::float8 AS seconds
          FROM events e
         WHERE (e.tx_id, e.global_position) > (c.tx_id::text::xid8, c.position)) AS l
 ORDER BY c.relay
"""


class RelayLag(msgspec.Struct, frozen=True):
    relay: str
    events: int
    """Events in the log after the checkpoint."""
    seconds: float
    """Age of the oldest of them (0 when there is none)."""


async def relay_lags(pool: asyncpg.Pool) -> list[RelayLag]:
    rows = await pool.fetch(_LAG_SQL)
    return [RelayLag(row["relay"], row["events"], max(0.0, row["seconds"])) for row in rows]
