"""Announcing committed appends: the NOTIFY that wakes log readers, sent after the append commits,
one for every append committed while the previous one was on its way.

Why not in ``tl_append``. A transaction that NOTIFYs takes a database-wide lock at commit and holds it
until the commit is durable, so every appending transaction waited for the previous one's WAL flush:
concurrent appends could not share a flush (group commit). At 32 concurrent single-event appends the
NOTIFY cost two thirds of the rate (``bench.append``, without vs with). Here the append commits
without it; then ``CommitNotices`` sends ``pg_notify`` in a transaction of its own that does not wait
for its flush (``synchronous_commit`` off: a notification lost in a crash is only a later wake-up),
and while one is in flight, the appends that commit meanwhile are announced by the next one, with
the newest cursor.

The payload is the newest committed cursor, ``"<tx_id>:<position>"``, as
``services.eventstore.notifications`` reads it. ``ProgressNotices`` coalesces the projection runners'
progress the same way, on ``READ_MODELS_CHANNEL``, with the runners' committed checkpoints as the
payload (``projections.known``): the barrier of a process without runners resolves its waits from
it. Notifications are a latency aid: every reader also polls, so a failed send is logged and never
fails the append that was already committed.
"""

import asyncio
import logging
from collections.abc import Callable

import asyncpg

from events import LogCursor
from services.eventstore.notifications import CHANNEL, READ_MODELS_CHANNEL

_log = logging.getLogger(__name__)


class CommitNotices:
    """Coalesced NOTIFYs of committed appends over ``pool`` (see the module docstring)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._pending: LogCursor | None = None
        self._announced = LogCursor(0, 0)
        self._sender: asyncio.Task[None] | None = None
        self.sent = 0
        """NOTIFYs sent (a seam for tests and benchmarks)."""

    def committed(self, cursor: LogCursor) -> None:
        """An append committed up to ``cursor``: it is announced by the next NOTIFY (unless one has
        named a newer cursor already: appends return in any order)."""
        if cursor <= self._announced:
            return
        if self._pending is None or cursor > self._pending:
            self._pending = cursor
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send(), name="commit notices")

    async def flush(self) -> None:
        """Waits until every cursor given so far has been announced (or its NOTIFY failed)."""
        while self._sender is not None and not self._sender.done():
            await asyncio.shield(self._sender)

    async def _send(self) -> None:
        while self._pending is not None:
            cursor, self._pending = self._pending, None
            self._announced = max(self._announced, cursor)
            if await _notify(self._pool, CHANNEL, f"{int(cursor.tx_id)}:{int(cursor.position)}"):
                self.sent += 1


class ProgressNotices:
    """Coalesced NOTIFYs on ``READ_MODELS_CHANNEL`` that a local projection runner committed a batch:
    ``moved`` asks for one; those asked while one is in flight share the next. The payload is made
    when the NOTIFY is sent, by the function the newest ``moved`` gave, so it is the newest there is."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._payload: Callable[[], str] | None = None
        self._sender: asyncio.Task[None] | None = None

    def moved(self, payload: Callable[[], str]) -> None:
        self._payload = payload
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send(), name="read model notices")

    async def flush(self) -> None:
        while self._sender is not None and not self._sender.done():
            await asyncio.shield(self._sender)

    async def _send(self) -> None:
        while self._payload is not None:
            payload, self._payload = self._payload, None
            await _notify(self._pool, READ_MODELS_CHANNEL, payload())


async def _notify(pool: asyncpg.Pool, channel: str, payload: str) -> bool:
    """One NOTIFY in a transaction of its own that does not wait for its flush; False (logged) when
    it could not be sent. ``channel`` and ``payload`` are ours (plain identifiers, digits, ``:`` and
    ``,``)."""
    try:
        await pool.execute(f"SET LOCAL synchronous_commit TO off; SELECT pg_notify('{channel}', '{payload}')")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as error:
        _log.warning("could not notify %s (%s); readers will poll", channel, error)
        return False
    return True
