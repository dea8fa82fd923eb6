"""Following the log: batches of committed events, in commit-safe order, from a cursor on.

The tail never skips an event: it reads with ``EventStore.read_all`` (only transactions older than
every running one) and never advances past a gap on a timer. Between reads it sleeps until a
notification or the poll interval; when a notification named an event it has not seen yet (it is
waiting for an older open transaction to finish) it retries with a short, growing back-off.
"""

import asyncio
from collections.abc import AsyncIterator

from events import LogCursor, RecordedEvent
from services.eventstore.notifications import Waiter
from services.eventstore.shared_reads import LogReader

_FIRST_RETRY = 0.001
_LAST_RETRY = 0.05


class LogTail:
    def __init__(
        self, store: LogReader, waiter: Waiter, *, batch_size: int = 1000, poll_interval: float = 1.0
    ) -> None:
        self._store = store
        self._waiter = waiter
        self._batch_size = batch_size
        self._poll_interval = poll_interval

    async def batches(self, after: LogCursor) -> AsyncIterator[list[RecordedEvent]]:
        """Yields non-empty batches for ever; the caller's cursor is the last event it handled."""
        cursor = after
        retry = _FIRST_RETRY
        while True:
            batch = await self._store.read_all(cursor, self._batch_size)
            if batch:
                yield batch
                cursor = batch[-1].cursor
                retry = _FIRST_RETRY
                if len(batch) == self._batch_size:
                    continue
            if self._waiter.notified > cursor:
                await asyncio.sleep(retry)
                retry = min(retry * 2, _LAST_RETRY)
            else:
                await self._waiter.wait(self._poll_interval)
