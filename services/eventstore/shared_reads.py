"""One read of the log for every follower of one process: the tails of the projection runners and
the token verifier's invalidation share their reads through ``SharedLogReads``.

Each follower keeps its own ``LogTail`` (its cursor, its wake-ups), but a tail's read goes through
here. Two reads from the same cursor with the same limit are one query: while one is running, a
second caller waits for it; once it is done, its answer is kept (the last few) and handed to the
callers that ask for the same cursor next. After a notification every follower wakes at the same
cursor, so the eight readers of a process (seven projections and the verifier) cost one query
instead of eight; a follower that applies its batch more slowly finds the next batch already read.

Why a kept answer stays true. A read returns only events of transactions older than every running
one (``tx_id < pg_snapshot_xmin``), in ``(tx_id, position)`` order. A transaction that commits later
was running or not yet begun at that read, so its id is at least that read's xmin and its events
come after every event returned. The answer is thus a prefix of what any later read from the same
cursor returns: a follower given it misses nothing, it only reads again sooner (``LogTail`` goes on
at once after a full batch, and retries when a notification named an event it has not seen).

A caller cancelled while waiting does not cancel the read the others wait for; a read that fails
fails every caller waiting for it and is not kept.
"""

import asyncio
from collections import OrderedDict
from typing import Protocol

from events import LogCursor, RecordedEvent

KEPT_ANSWERS = 8


class LogReader(Protocol):
    async def read_all(self, after: LogCursor, limit: int) -> list[RecordedEvent]: ...


class SharedLogReads:
    """A ``LogReader`` over ``reader`` that shares equal reads (see the module docstring)."""

    def __init__(self, reader: LogReader, *, kept: int = KEPT_ANSWERS) -> None:
        self._reader = reader
        self._kept = kept
        self._running: dict[tuple[LogCursor, int], asyncio.Task[list[RecordedEvent]]] = {}
        self._answers: OrderedDict[tuple[LogCursor, int], list[RecordedEvent]] = OrderedDict()
        self.queries = 0
        """Reads sent to ``reader`` (a seam for tests and benchmarks)."""
        self.shared = 0
        """Reads answered by another caller's query, running or kept."""

    async def read_all(self, after: LogCursor, limit: int = 1000) -> list[RecordedEvent]:
        key = (after, limit)
        answer = self._answers.get(key)
        if answer is not None:
            self.shared += 1
            return list(answer)
        task = self._running.get(key)
        if task is None:
            self.queries += 1
            task = self._running[key] = asyncio.create_task(self._read(key), name="shared log read")
            task.add_done_callback(_retrieve)  # nobody may be left waiting to see its error
        else:
            self.shared += 1
        return list(await asyncio.shield(task))

    async def _read(self, key: tuple[LogCursor, int]) -> list[RecordedEvent]:
        try:
            answer = await self._reader.read_all(*key)
        finally:
            del self._running[key]
        if answer:  # an empty answer is not kept: the next read may find what committed since
            self._answers[key] = answer
            while len(self._answers) > self._kept:
                self._answers.popitem(last=False)
        return answer


def _retrieve(task: asyncio.Task[list[RecordedEvent]]) -> None:
    if not task.cancelled():
        task.exception()
