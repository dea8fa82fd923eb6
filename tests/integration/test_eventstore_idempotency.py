"""Idempotent appends: a retry with the same event ids is a success that stores nothing new; event ids
reused anywhere else are an error that stores nothing."""

import asyncio

import asyncpg
import pytest

from events import NewEvent
from events.accounts import AccountDisabled
from services import database
from services.eventstore import PostgresEventStore
from services.ports import DuplicateEventId, StreamAppend, StreamState
from tests.integration.eventstore_helpers import (
    TL_APPEND_SQL,
    assert_stream_is_consistent,
    event,
    events,
    ids,
    metadata,
    stored_ids,
    stream_name,
    table_counts,
    tl_append_args,
)


@pytest.mark.parametrize(
    ("prepare", "expected"),
    [
        (0, 0),
        (0, StreamState.NO_STREAM),
        (0, StreamState.ANY),
        (2, StreamState.ANY),
        (2, StreamState.STREAM_EXISTS),
        (2, 2),
    ],
    ids=["exact-new", "no_stream", "any-new", "any-existing", "stream_exists", "exact-existing"],
)
async def test_retrying_an_append_returns_the_stored_result(
    store: PostgresEventStore, pool: asyncpg.Pool, prepare: int, expected: int
) -> None:
    """An identical retry (same ids, same mode) returns the first append's positions and versions and
    stores nothing new, in every expected-version mode."""
    stream = stream_name()
    if prepare:
        await store.append(stream, events(prepare), StreamState.NO_STREAM)
    batch = events(3)
    first = await store.append(stream, batch, expected)
    before = await table_counts(pool)

    retried = await store.append(stream, batch, expected)

    assert retried == first
    assert [e.event_id for e in retried.events] == ids(batch)
    assert [e.stream_version for e in retried.events] == [prepare + 1, prepare + 2, prepare + 3]
    assert await table_counts(pool) == before
    assert await assert_stream_is_consistent(pool, stream) == prepare + 3


async def test_retry_succeeds_after_the_stream_moved_on(
    store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    """A retry in exact mode whose events are stored right after the expected version succeeds even
    though later events were appended since (it is the same append, not a conflict)."""
    stream = stream_name()
    batch = events(2)
    first = await store.append(stream, batch, 0)
    await store.append(stream, events(3), 2)

    retried = await store.append(stream, batch, 0)

    assert retried == first
    assert await assert_stream_is_consistent(pool, stream) == 5


async def test_retry_of_a_multi_stream_append_returns_the_stored_result(
    store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    """append_many is idempotent too: the retry returns every stream's stored events."""
    one, two = stream_name(), stream_name()
    request = [StreamAppend(one, events(2), StreamState.NO_STREAM), StreamAppend(two, events(1), 0)]
    first = await store.append_many(request)
    before = await table_counts(pool)

    assert await store.append_many(request) == first
    assert await table_counts(pool) == before


async def test_concurrent_identical_appends_store_once(store: PostgresEventStore, pool: asyncpg.Pool) -> None:
    """Identical appends sent at the same time (a client retrying before the first reply) all succeed
    with the same result and the events are stored once."""
    stream = stream_name()
    batch = events(2)
    results = await asyncio.gather(*(store.append(stream, batch, StreamState.ANY) for _ in range(8)))
    assert all(result == results[0] for result in results)
    assert await assert_stream_is_consistent(pool, stream) == 2


async def test_event_id_reused_in_another_stream_is_refused(
    store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    """An event id stored in stream A, appended to stream B, raises DuplicateEventId and writes nothing."""
    first, second = stream_name(), stream_name()
    batch = events(1)
    await store.append(first, batch, StreamState.ANY)
    before = await table_counts(pool)

    for expected in (StreamState.ANY, StreamState.NO_STREAM, 0):
        with pytest.raises(DuplicateEventId):
            await store.append(second, batch, expected)

    assert await table_counts(pool) == before
    assert await assert_stream_is_consistent(pool, second) == 0
    assert await assert_stream_is_consistent(pool, first) == 1


@pytest.mark.parametrize(
    "case",
    ["other-expected-version", "reordered", "stored-plus-new", "subset-at-wrong-place", "other-type"],
)
async def test_event_id_reused_at_another_place_is_refused(
    store: PostgresEventStore, pool: asyncpg.Pool, case: str
) -> None:
    """Stored ids offered at another version, in another order, mixed with new events, or with another
    type are not a retry: DuplicateEventId, and nothing (not even the new events) is written."""
    stream = stream_name()
    a, b = event(1), event(2)
    await store.append(stream, [a, b], 0)
    fresh = event(3)
    offered: list[NewEvent]
    match case:
        case "other-expected-version":
            offered, expected = [a, b], 1
        case "reordered":
            offered, expected = [b, a], StreamState.ANY
        case "stored-plus-new":
            offered, expected = [a, b, fresh], 0
        case "subset-at-wrong-place":
            offered, expected = [b], 0
        case _:
            disabled = NewEvent(
                event=AccountDisabled(account_id="acc"), metadata=metadata(), event_id=a.event_id
            )
            offered, expected = [disabled, b], 0
    before = await table_counts(pool)

    with pytest.raises(DuplicateEventId):
        await store.append(stream, offered, expected)

    assert await table_counts(pool) == before
    assert await stored_ids(pool, [fresh.event_id]) == set()
    assert await assert_stream_is_consistent(pool, stream) == 2


async def test_event_id_claimed_by_a_concurrent_append_to_another_stream_is_refused(
    dsn: str, store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    """When another transaction is writing the same event id to another stream (not yet committed),
    the append waits for it and then raises DuplicateEventId, not a raw database error."""
    batch = events(1)
    first, second = stream_name(), stream_name()
    connection = await database.connect(dsn)
    try:
        transaction = connection.transaction()
        await transaction.start()
        await connection.fetch(TL_APPEND_SQL, *tl_append_args(first, batch))
        racing = asyncio.create_task(store.append(second, batch, StreamState.ANY))
        await asyncio.sleep(0.2)
        assert not racing.done()  # blocked on the uncommitted event id
        await transaction.commit()
        with pytest.raises(DuplicateEventId):
            await racing
    finally:
        await connection.close()
    assert await assert_stream_is_consistent(pool, first) == 1
    assert await assert_stream_is_consistent(pool, second) == 0
