"""Optimistic concurrency: the four expected-version modes, and what a losing writer leaves behind."""

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.eventstore import PostgresEventStore
from services.ports import StreamState, WrongExpectedVersion
from tests.integration.eventstore_helpers import (
    assert_stream_is_consistent,
    event,
    events,
    ids,
    open_store,
    stored_ids,
    stream_name,
    table_counts,
)


@pytest.fixture
async def isolated(empty_database: str) -> AsyncIterator[tuple[asyncpg.Pool, PostgresEventStore]]:
    async with open_store(empty_database, max_size=12) as opened:
        yield opened


async def test_any_appends_to_a_new_and_to_an_existing_stream(
    store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    """StreamState.ANY creates a stream and then keeps appending at its end."""
    stream = stream_name()
    first = await store.append(stream, events(2), StreamState.ANY)
    second = await store.append(stream, events(1), StreamState.ANY)
    assert [e.stream_version for e in first.events] == [1, 2]
    assert [e.stream_version for e in second.events] == [3]
    assert await store.stream_version(stream) == 3
    await assert_stream_is_consistent(pool, stream)


async def test_no_stream_succeeds_once_then_conflicts(store: PostgresEventStore, pool: asyncpg.Pool) -> None:
    """NO_STREAM creates the stream; a second NO_STREAM append fails with actual = current version."""
    stream = stream_name()
    await store.append(stream, events(2), StreamState.NO_STREAM)
    loser = events(1)
    with pytest.raises(WrongExpectedVersion) as raised:
        await store.append(stream, loser, StreamState.NO_STREAM)
    assert (raised.value.stream_id, raised.value.expected, raised.value.actual) == (
        stream,
        StreamState.NO_STREAM,
        2,
    )
    assert await stored_ids(pool, ids(loser)) == set()
    assert await assert_stream_is_consistent(pool, stream) == 2


async def test_stream_exists_fails_on_a_new_stream_and_succeeds_on_an_existing_one(
    store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    """STREAM_EXISTS refuses a stream without events (actual 0, no row made) and appends to one with."""
    stream = stream_name()
    with pytest.raises(WrongExpectedVersion) as raised:
        await store.append(stream, events(1), StreamState.STREAM_EXISTS)
    assert (raised.value.stream_id, raised.value.expected, raised.value.actual) == (
        stream,
        StreamState.STREAM_EXISTS,
        0,
    )
    assert await assert_stream_is_consistent(pool, stream) == 0

    await store.append(stream, events(1), StreamState.NO_STREAM)
    result = await store.append(stream, events(2), StreamState.STREAM_EXISTS)
    assert [e.stream_version for e in result.events] == [2, 3]
    await assert_stream_is_consistent(pool, stream)


async def test_exact_version_appends_in_sequence(store: PostgresEventStore, pool: asyncpg.Pool) -> None:
    """An exact expected version n appends at n+1 when the stream holds exactly n events."""
    stream = stream_name()
    assert [e.stream_version for e in (await store.append(stream, events(1), 0)).events] == [1]
    assert [e.stream_version for e in (await store.append(stream, events(3), 1)).events] == [2, 3, 4]
    assert [e.stream_version for e in (await store.append(stream, events(1), 4)).events] == [5]
    assert await assert_stream_is_consistent(pool, stream) == 5


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        (0, 1),  # the stream does not exist yet
        (0, 7),
        (2, 0),  # exact 0 means "a new stream"
        (2, 1),  # behind
        (2, 3),  # ahead
    ],
)
async def test_exact_version_conflicts_report_expected_and_actual(
    store: PostgresEventStore, pool: asyncpg.Pool, existing: int, expected: int
) -> None:
    """A wrong exact version raises WrongExpectedVersion(stream_id, expected, actual) and stores nothing."""
    stream = stream_name()
    if existing:
        await store.append(stream, events(existing), StreamState.NO_STREAM)
    loser = events(2)
    with pytest.raises(WrongExpectedVersion) as raised:
        await store.append(stream, loser, expected)
    assert (raised.value.stream_id, raised.value.expected, raised.value.actual) == (
        stream,
        expected,
        existing,
    )
    assert stream in str(raised.value)
    assert await stored_ids(pool, ids(loser)) == set()
    assert await assert_stream_is_consistent(pool, stream) == existing


async def test_concurrent_writers_with_the_same_expected_version_one_wins(
    isolated: tuple[asyncpg.Pool, PostgresEventStore],
) -> None:
    """Of writers racing at one expected version exactly one wins each round; losers store nothing and
    draw no position, so stream versions and (alone in this database) global positions stay gap-free."""
    pool, store = isolated
    stream = stream_name()
    writers = 6
    for version in range(10):
        attempts = [events(2, start=10 * version + w) for w in range(writers)]
        outcomes = await asyncio.gather(
            *(store.append(stream, attempt, version * 2) for attempt in attempts), return_exceptions=True
        )
        winners = [n for n, outcome in enumerate(outcomes) if not isinstance(outcome, BaseException)]
        assert len(winners) == 1, outcomes
        for n, outcome in enumerate(outcomes):
            if n in winners:
                continue
            assert isinstance(outcome, WrongExpectedVersion), outcome
            assert (outcome.stream_id, outcome.expected, outcome.actual) == (
                stream,
                version * 2,
                version * 2 + 2,
            )
            assert await stored_ids(pool, ids(attempts[n])) == set()
        assert await stored_ids(pool, ids(attempts[winners[0]])) == set(ids(attempts[winners[0]]))

    assert await assert_stream_is_consistent(pool, stream) == 20
    # The expected version is checked before any position is drawn: the losers consumed none.
    after = await store.append(stream, [event()], 20)
    positions = [r["global_position"] for r in await pool.fetch("SELECT global_position FROM events")]
    assert sorted(positions) == list(range(1, 22))
    assert after.last_position == 21
    assert await table_counts(pool) == (21, 1, 0)
