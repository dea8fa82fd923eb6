"""Uniqueness claims of the PostgreSQL store under real concurrency: of appends racing on several
connections for one key, exactly one wins. The rest of the claims contract is in tests/contract."""

import asyncio

import asyncpg

from services.eventstore import PostgresEventStore
from services.ports import Claim, StreamState, UniquenessViolation
from tests.integration.eventstore_helpers import (
    assert_stream_is_consistent,
    created,
    ids,
    new_id,
    stored_ids,
    stream_name,
)


def key() -> str:
    return f"account-name:{new_id()}"


async def test_twenty_racing_claims_of_one_key_have_one_winner(
    store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    """20 concurrent appends, each creating its own stream and claiming the same key: exactly one
    succeeds, the others raise UniquenessViolation and leave no events and no stream row."""
    name = key()
    streams = [stream_name("account") for _ in range(20)]
    batches = [[created()] for _ in streams]
    outcomes = await asyncio.gather(
        *(
            store.append(stream, batch, StreamState.NO_STREAM, claims=[Claim(name, stream)])
            for stream, batch in zip(streams, batches, strict=True)
        ),
        return_exceptions=True,
    )

    winners = [
        s for s, outcome in zip(streams, outcomes, strict=True) if not isinstance(outcome, BaseException)
    ]
    assert len(winners) == 1, outcomes
    assert all(isinstance(o, UniquenessViolation) for o in outcomes if isinstance(o, BaseException)), outcomes
    assert await store.claim_owner(name) == winners[0]
    for stream, batch in zip(streams, batches, strict=True):
        expected = 1 if stream == winners[0] else 0
        assert await assert_stream_is_consistent(pool, stream) == expected
        assert len(await stored_ids(pool, ids(batch))) == expected
