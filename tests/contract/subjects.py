"""A store under contract test and how a test looks at what it holds. ``PostgresSubject`` reads the
tables (so it also sees a ``streams`` row without events, or a claim left behind); ``MemorySubject``
reads through the port, which is all the in-memory store has."""

import uuid
from collections.abc import Sequence
from typing import Protocol

import asyncpg

from events.envelope import LOG_START
from services.eventstore import PostgresEventStore
from services.memory_store import MemoryEventStore
from services.ports import EventStore
from tests.integration import eventstore_helpers as tables
from tests.integration.eventstore_helpers import TableCounts

EVERYTHING = 10**9


class Subject(Protocol):
    store: EventStore

    async def counts(self) -> TableCounts: ...

    async def stored_ids(self, event_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]: ...

    async def stored_versions(self, stream_id: str) -> list[int]: ...

    async def stream_row(self, stream_id: str) -> int | None:
        """The stream's recorded version, or None when it has none (not even 0)."""
        ...


class PostgresSubject:
    def __init__(self, store: PostgresEventStore, pool: asyncpg.Pool) -> None:
        self.store: EventStore = store
        self.pool = pool

    async def counts(self) -> TableCounts:
        return await tables.table_counts(self.pool)

    async def stored_ids(self, event_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        return await tables.stored_ids(self.pool, event_ids)

    async def stored_versions(self, stream_id: str) -> list[int]:
        return await tables.stored_versions(self.pool, stream_id)

    async def stream_row(self, stream_id: str) -> int | None:
        return await tables.stream_row(self.pool, stream_id)


class MemorySubject:
    def __init__(self, store: MemoryEventStore) -> None:
        self.store: EventStore = store

    async def counts(self) -> TableCounts:
        log = await self.store.read_all(LOG_START, EVERYTHING)
        claims = await self.store.claims_with_prefix("")
        return TableCounts(len(log), len({e.stream_id for e in log}), len(claims))

    async def stored_ids(self, event_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        wanted = set(event_ids)
        return {e.event_id for e in await self.store.read_all(LOG_START, EVERYTHING) if e.event_id in wanted}

    async def stored_versions(self, stream_id: str) -> list[int]:
        return [e.stream_version for e in await self.store.read_stream(stream_id)]

    async def stream_row(self, stream_id: str) -> int | None:
        return await self.store.stream_version(stream_id) or None


async def assert_stream_is_consistent(subject: Subject, stream_id: str) -> int:
    """Versions run 1..n without gaps and the stream's recorded version is n; returns n."""
    versions = await subject.stored_versions(stream_id)
    assert versions == list(range(1, len(versions) + 1)), f"{stream_id}: versions {versions}"
    assert await subject.stream_row(stream_id) == (len(versions) or None)
    assert await subject.store.stream_version(stream_id) == len(versions)
    return len(versions)
