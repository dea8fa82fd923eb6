"""Group commit in the PostgreSQL store (``services.eventstore.group_commit``): appends made at once
from one store share a transaction, and each still gets the outcome it would have had alone: a
refused one (wrong expected version, taken claim, event ids stored elsewhere) stores nothing and
fails only itself, a retry answers its stored events, and appends that share a stream are not
merged but made one after the other."""

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.eventstore import PostgresEventStore
from services.ports import (
    AppendResult,
    Claim,
    DuplicateEventId,
    StreamState,
    UniquenessViolation,
    WrongExpectedVersion,
)
from tests.integration.eventstore_helpers import (
    assert_stream_is_consistent,
    event,
    events,
    ids,
    open_store,
    stored_ids,
    stream_name,
)


@pytest.fixture
async def opened(empty_database: str) -> AsyncIterator[tuple[asyncpg.Pool, PostgresEventStore]]:
    async with open_store(empty_database, max_size=12) as pair:
        yield pair


async def test_refusals_in_a_group_fail_only_their_own_append(
    opened: tuple[asyncpg.Pool, PostgresEventStore],
) -> None:
    pool, store = opened
    existing = [stream_name() for _ in range(2)]
    for stream in existing:
        await store.append(stream, [event()], StreamState.NO_STREAM)
    holder = stream_name()
    await store.append(holder, [event()], StreamState.NO_STREAM, claims=[Claim("name:taken", holder)])

    fresh = [(stream_name(), events(2)) for _ in range(20)]
    stale = [(stream, events(1)) for stream in existing]
    claimant = (stream_name(), events(1))
    outcomes = await asyncio.gather(
        *(store.append(stream, batch, StreamState.NO_STREAM) for stream, batch in fresh[:10]),
        *(store.append(stream, batch, 0) for stream, batch in stale),
        store.append(
            claimant[0], claimant[1], StreamState.NO_STREAM, claims=[Claim("name:taken", claimant[0])]
        ),
        *(store.append(stream, batch, StreamState.NO_STREAM) for stream, batch in fresh[10:]),
        return_exceptions=True,
    )
    appended = [o for o in outcomes[:10] + outcomes[13:] if isinstance(o, AppendResult)]
    assert len(appended) == 20, outcomes
    for outcome, (stream, batch) in zip(outcomes[10:12], stale, strict=True):
        assert isinstance(outcome, WrongExpectedVersion), outcome
        assert (outcome.stream_id, outcome.expected, outcome.actual) == (stream, 0, 1)
        assert await stored_ids(pool, ids(batch)) == set()
    assert isinstance(outcomes[12], UniquenessViolation), outcomes[12]
    assert await stored_ids(pool, ids(claimant[1])) == set()
    assert await store.claim_owner("name:taken") == holder

    for (stream, batch), result in zip(fresh, appended, strict=True):
        assert [e.event_id for e in result.events] == ids(batch)
        assert [e.stream_version for e in result.events] == [1, 2]
        assert await assert_stream_is_consistent(pool, stream) == 2
    # The first append went alone; the others waited for it and, once the three refused appends
    # were taken out (one call each), committed together.
    assert len({result.events[0].tx_id for result in appended}) <= 2


async def test_retries_and_reused_ids_in_a_group_answer_as_they_would_alone(
    opened: tuple[asyncpg.Pool, PostgresEventStore],
) -> None:
    pool, store = opened
    retried = stream_name()
    first = events(2)
    original = await store.append(retried, first, StreamState.NO_STREAM)
    elsewhere = stream_name()

    fresh = [(stream_name(), events(1)) for _ in range(8)]
    outcomes = await asyncio.gather(
        *(store.append(stream, batch, StreamState.NO_STREAM) for stream, batch in fresh[:4]),
        store.append(retried, first, StreamState.NO_STREAM),
        store.append(elsewhere, first, StreamState.NO_STREAM),
        *(store.append(stream, batch, StreamState.NO_STREAM) for stream, batch in fresh[4:]),
        return_exceptions=True,
    )
    assert outcomes[4] == original
    assert isinstance(outcomes[5], DuplicateEventId), outcomes[5]
    assert await store.stream_version(elsewhere) == 0
    for outcome, (stream, batch) in zip(outcomes[:4] + outcomes[6:], fresh, strict=True):
        assert isinstance(outcome, AppendResult), outcome
        assert [e.event_id for e in outcome.events] == ids(batch)
        assert await assert_stream_is_consistent(pool, stream) == 1


async def test_appends_to_one_stream_made_at_once_are_not_merged(
    opened: tuple[asyncpg.Pool, PostgresEventStore],
) -> None:
    pool, store = opened
    stream = stream_name()
    busy = [stream_name() for _ in range(4)]
    outcomes = await asyncio.gather(
        *(store.append(s, [event()], StreamState.NO_STREAM) for s in busy),
        *(store.append(stream, events(2, start=10 * n), StreamState.ANY) for n in range(5)),
    )
    versions = sorted(v for outcome in outcomes[4:] for v in (e.stream_version for e in outcome.events))
    assert versions == list(range(1, 11))
    assert await assert_stream_is_consistent(pool, stream) == 10
