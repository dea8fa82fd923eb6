"""Adapting the event store to ``LogSource`` without this package importing ``services``.

The store's pieces are split: a tailer has ``batches`` (``services.eventstore.tail.LogTail``) and the
store has ``read_all`` (``services.eventstore.EventStore``). ``CombinedLogSource`` joins any two such
objects; the composition root builds it.
"""

from collections.abc import AsyncIterator
from typing import Protocol

from events import LogCursor, RecordedEvent


class Tailer(Protocol):
    def batches(self, after: LogCursor) -> AsyncIterator[list[RecordedEvent]]: ...


class Reader(Protocol):
    async def read_all(self, after: LogCursor, limit: int) -> list[RecordedEvent]: ...


class CombinedLogSource:
    """A ``LogSource``: ``batches`` from ``tailer``, ``read_all`` from ``reader``.

    Every runner calls ``batches`` once and iterates it on its own; a ``LogTail`` allows that (its
    waiter remembers the newest notified cursor, so no runner sleeps through a wake-up).
    """

    def __init__(self, tailer: Tailer, reader: Reader) -> None:
        self._tailer = tailer
        self._reader = reader

    def batches(self, after: LogCursor) -> AsyncIterator[list[RecordedEvent]]:
        return self._tailer.batches(after)

    async def read_all(self, after: LogCursor, limit: int) -> list[RecordedEvent]:
        return await self._reader.read_all(after, limit)
