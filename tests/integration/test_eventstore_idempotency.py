"""Idempotent appends of the PostgreSQL store under real concurrency: identical appends racing on
several connections store once, and an event id another open transaction is writing is refused
once that transaction commits. The rest of the idempotency contract is in tests/contract."""

import asyncio

import asyncpg
import pytest

from services import database
from services.eventstore import PostgresEventStore
from services.ports import DuplicateEventId, StreamState
from tests.integration.eventstore_helpers import (
    TL_APPEND_SQL,
    assert_stream_is_consistent,
    events,
    stream_name,
    tl_append_args,
)


async def test_concurrent_identical_appends_store_once(store: PostgresEventStore, pool: asyncpg.Pool) -> None:
    """Identical appends sent at the same time (a client retrying before the first reply) all succeed
    with the same result and the events are stored once."""
    stream = stream_name()
    batch = events(2)
    results = await asyncio.gather(*(store.append(stream, batch, StreamState.ANY) for _ in range(8)))
    assert all(result == results[0] for result in results)
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
