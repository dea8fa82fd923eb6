"""Optimistic concurrency of the PostgreSQL store with real connections: of writers racing at one
expected version exactly one wins each round, and the losers draw no position. The expected-version
modes themselves are in tests/contract."""

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.eventstore import PostgresEventStore
from services.ports import WrongExpectedVersion
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
