"""Sealing chained checkpoints over the global log (``tl_checkpoint`` in migration 0004).

Sealing never blocks writers: it covers only events whose transactions are older than every running
one (the gap-safe committed prefix) and locks out other checkpointers only. Run it periodically
(``tokenledger audit checkpoint`` from cron, or a worker calling ``seal``); events appended since the
last seal are protected by their stream chains alone until the next one.
"""

import asyncpg
import msgspec

DEFAULT_EVENTS_PER_CHECKPOINT = 10_000


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    checkpoint: int
    last_tx_id: int
    last_position: int
    event_count: int


async def seal(
    pool: asyncpg.Pool, *, events_per_checkpoint: int = DEFAULT_EVENTS_PER_CHECKPOINT
) -> list[Checkpoint]:
    """Seals checkpoints of up to ``events_per_checkpoint`` events until every committed event is
    covered; returns the new ones (none when nothing was waiting)."""
    sealed: list[Checkpoint] = []
    while True:
        row = await pool.fetchrow("SELECT * FROM tl_checkpoint($1)", events_per_checkpoint)
        if row is None:
            return sealed
        sealed.append(Checkpoint(**dict(row)))
