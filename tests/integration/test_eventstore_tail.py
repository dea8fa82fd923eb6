"""Gap-safe tailing: a reader of the log never passes a transaction that may still commit, so it sees
every committed event exactly once and each stream's events in version order."""

import asyncio
import contextlib
import itertools
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from events import RecordedEvent
from events.envelope import LOG_START
from services import database
from services.eventstore import PostgresEventStore
from services.eventstore.notifications import LogNotifications
from services.eventstore.tail import LogTail
from services.ports import AppendResult, StreamAppend, StreamState, WrongExpectedVersion
from tests.integration.eventstore_helpers import TL_APPEND_SQL, events, ids, open_store, tl_append_args

LOAD_SECONDS = 3.0


class Follower:
    """A LogTail (woken by LISTEN/NOTIFY) collecting every event it is given, in order."""

    def __init__(self, dsn: str, store: PostgresEventStore, *, batch_size: int = 1000) -> None:
        self.notifications = LogNotifications(lambda: database.connect(dsn))
        self.tail = LogTail(store, self.notifications.waiter(), batch_size=batch_size, poll_interval=0.5)
        self.seen: list[RecordedEvent] = []
        self.batches = 0
        self._task: asyncio.Task[None] | None = None

    async def _follow(self) -> None:
        async for batch in self.tail.batches(LOG_START):
            self.seen.extend(batch)
            self.batches += 1

    async def start(self) -> None:
        await self.notifications.start()
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.notifications.stop()

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        """Until ``count`` events were seen, or ``timeout`` passed (the caller's asserts tell which)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while len(self.seen) < count:
                    await asyncio.sleep(0.02)


@pytest.fixture
async def isolated(empty_database: str) -> AsyncIterator[tuple[str, asyncpg.Pool, PostgresEventStore]]:
    async with open_store(empty_database, max_size=16) as (pool, store):
        yield empty_database, pool, store


class Ledger:
    """What the writers know was committed: event id -> (stream, version)."""

    def __init__(self) -> None:
        self.committed: dict[uuid.UUID, tuple[str, int]] = {}
        self.conflicts = 0

    def record(self, result: AppendResult, streams: list[str]) -> None:
        for appended, stream in zip(result.events, streams, strict=True):
            assert appended.event_id not in self.committed
            self.committed[appended.event_id] = (stream, appended.stream_version)


async def _run_writers(dsn: str, store: PostgresEventStore, ledger: Ledger, seconds: float) -> None:
    """Eight writers: two in ANY mode and three in exact mode (retrying conflicts) on two shared
    streams, two on streams of their own (with multi-stream appends), and one that keeps each
    transaction open for a while after drawing its positions, so commits land out of order."""
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + seconds
    rng = random.Random(7)

    def running() -> bool:
        return loop.time() < stop_at

    async def any_mode(stream: str) -> None:
        while running():
            batch = events(rng.randint(1, 3))
            ledger.record(await store.append(stream, batch, StreamState.ANY), [stream] * len(batch))

    async def exact_mode(stream: str) -> None:
        version = await store.stream_version(stream)
        while running():
            batch = events(rng.randint(1, 3))
            try:
                result = await store.append(stream, batch, version)
            except WrongExpectedVersion as conflict:
                ledger.conflicts += 1
                version = conflict.actual
                continue
            ledger.record(result, [stream] * len(batch))
            version = result.events[-1].stream_version

    async def own_streams(name: str) -> None:
        versions = {f"{name}-{n}": 0 for n in range(4)}
        while running():
            one, two = rng.sample(sorted(versions), 2)
            first, second = events(rng.randint(1, 2)), events(1)
            result = await store.append_many(
                [StreamAppend(one, first, versions[one]), StreamAppend(two, second, versions[two])]
            )
            ledger.record(result, [one] * len(first) + [two] * len(second))
            versions[one] += len(first)
            versions[two] += len(second)

    async def slow_transactions(stream: str) -> None:
        connection = await database.connect(dsn)
        try:
            while running():
                batch = events(rng.randint(1, 2))
                async with connection.transaction():
                    rows = await connection.fetch(TL_APPEND_SQL, *tl_append_args(stream, batch))
                    await asyncio.sleep(rng.uniform(0.0, 0.02))
                for row in rows:
                    ledger.committed[row["event_id"]] = (stream, row["stream_version"])
        finally:
            await connection.close()

    writers: list[Callable[[], Awaitable[None]]] = [
        lambda: any_mode("hot-any"),
        lambda: any_mode("hot-any"),
        lambda: exact_mode("hot-exact"),
        lambda: exact_mode("hot-exact"),
        lambda: exact_mode("hot-exact"),
        lambda: own_streams("own-a"),
        lambda: own_streams("own-b"),
        lambda: slow_transactions("slow"),
    ]
    await asyncio.gather(*(writer() for writer in writers))


async def test_tail_sees_every_committed_event_once_under_concurrent_writers(
    isolated: tuple[str, asyncpg.Pool, PostgresEventStore],
) -> None:
    """With 8 concurrent writers for a few seconds, a live tail delivers every committed event exactly
    once, in increasing cursor order, with each stream's versions increasing by exactly 1."""
    dsn, pool, store = isolated
    follower = Follower(dsn, store, batch_size=100)
    ledger = Ledger()
    await follower.start()
    try:
        await _run_writers(dsn, store, ledger, LOAD_SECONDS)
        seen_while_writing = len(follower.seen)
        await follower.wait_for(len(ledger.committed))
        await asyncio.sleep(0.2)  # anything extra would show up now
    finally:
        await follower.stop()

    seen = follower.seen
    seen_ids = [e.event_id for e in seen]
    assert len(seen_ids) == len(set(seen_ids)), "an event was delivered twice"
    missing = set(ledger.committed) - set(seen_ids)
    assert not missing, f"{len(missing)} of {len(ledger.committed)} committed events never delivered"
    assert set(seen_ids) == set(ledger.committed)
    assert await pool.fetchval("SELECT count(*) FROM events") == len(ledger.committed)
    assert all(a.cursor < b.cursor for a, b in itertools.pairwise(seen))

    per_stream: dict[str, list[int]] = {}
    for recorded in seen:
        assert ledger.committed[recorded.event_id] == (recorded.stream_id, recorded.stream_version)
        per_stream.setdefault(recorded.stream_id, []).append(recorded.stream_version)
    for stream, versions in per_stream.items():
        assert versions == list(range(1, len(versions) + 1)), f"{stream}: {versions}"

    # The run was a real test: the tail read while writers wrote, and the writers did contend.
    assert len(per_stream) == 11
    assert seen_while_writing > 0
    assert follower.batches > 10
    assert ledger.conflicts > 0
    assert len(ledger.committed) > 200


async def test_tail_does_not_pass_an_open_transaction(
    isolated: tuple[str, asyncpg.Pool, PostgresEventStore],
) -> None:
    """An append left uncommitted holds back every later commit; once it commits, readers get both,
    the earlier transaction's event first."""
    dsn, _pool, store = isolated
    follower = Follower(dsn, store)
    await follower.start()
    held = await database.connect(dsn)
    try:
        transaction = held.transaction()
        await transaction.start()
        early = events(1)
        await held.fetch(TL_APPEND_SQL, *tl_append_args("early", early))

        late = events(1)
        await store.append("late", late, StreamState.ANY)
        assert await store.read_all(LOG_START) == []
        await asyncio.sleep(0.3)  # the tail was notified of "late" and keeps retrying
        assert follower.seen == []

        await transaction.commit()
        both = await store.read_all(LOG_START)
        assert [e.event_id for e in both] == ids(early) + ids(late)
        assert both[0].tx_id < both[1].tx_id
        assert both[0].global_position < both[1].global_position
        await follower.wait_for(2, timeout=2.0)
        assert [e.event_id for e in follower.seen] == ids(early) + ids(late)
    finally:
        await held.close()
        await follower.stop()


async def test_tail_passes_a_rolled_back_append(
    isolated: tuple[str, asyncpg.Pool, PostgresEventStore],
) -> None:
    """A rolled-back append leaves a hole in global positions; the tail waits for it to end, then
    passes the hole."""
    dsn, _pool, store = isolated
    held = await database.connect(dsn)
    try:
        transaction = held.transaction()
        await transaction.start()
        drawn = await held.fetch(TL_APPEND_SQL, *tl_append_args("rolled-back", events(1)))
        late = events(1)
        result = await store.append("late", late, StreamState.ANY)
        assert await store.read_all(LOG_START) == []
        await transaction.rollback()
    finally:
        await held.close()
    after = await store.read_all(LOG_START)
    assert [e.event_id for e in after] == ids(late)
    assert result.last_position > drawn[0]["global_position"]


async def test_a_transaction_that_has_not_written_does_not_hold_back_the_tail(
    isolated: tuple[str, asyncpg.Pool, PostgresEventStore],
) -> None:
    """Only transactions that have a transaction id (have written) hold readers back; a transaction
    that only reads does not. Any writing transaction does, whatever table it writes."""
    dsn, _pool, store = isolated
    held = await database.connect(dsn)
    try:
        async with held.transaction():
            await held.fetchval("SELECT count(*) FROM events")
            first = events(1)
            await store.append("s", first, StreamState.ANY)
            assert [e.event_id for e in await store.read_all(LOG_START)] == ids(first)

            await held.fetchval("SELECT pg_current_xact_id()")  # now it has an id, as a write gives
            second = events(1)
            await store.append("s", second, StreamState.ANY)
            assert [e.event_id for e in await store.read_all(LOG_START)] == ids(first)
        assert [e.event_id for e in await store.read_all(LOG_START)] == ids(first) + ids(second)
    finally:
        await held.close()
