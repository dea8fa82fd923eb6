"""Uniqueness claims taken inside an append, and the atomicity of multi-stream appends."""

import asyncio

import asyncpg
import pytest

from services.eventstore import PostgresEventStore
from services.ports import (
    Claim,
    DuplicateEventId,
    StreamAppend,
    StreamState,
    UniquenessViolation,
    WrongExpectedVersion,
)
from tests.integration.eventstore_helpers import (
    assert_stream_is_consistent,
    created,
    events,
    ids,
    new_id,
    stored_ids,
    stream_name,
    table_counts,
)


def key() -> str:
    return f"account-name:{new_id()}"


async def test_second_stream_claiming_a_key_fails_and_writes_nothing(
    store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    """A key held by stream A cannot be claimed by stream B: UniquenessViolation, and B gets neither
    events nor a stream row; A keeps the claim."""
    name = key()
    owner, other = stream_name("account"), stream_name("account")
    await store.append(owner, [created()], StreamState.NO_STREAM, claims=[Claim(name, owner)])
    before = await table_counts(pool)

    loser = [created()]
    with pytest.raises(UniquenessViolation) as raised:
        await store.append(other, loser, StreamState.NO_STREAM, claims=[Claim(name, other)])

    assert raised.value.claim == name
    assert name in str(raised.value)
    assert await table_counts(pool) == before
    assert await stored_ids(pool, ids(loser)) == set()
    assert await assert_stream_is_consistent(pool, other) == 0
    assert await store.claim_owner(name) == owner


async def test_the_holder_may_claim_its_key_again(store: PostgresEventStore) -> None:
    """Claiming a key the stream already holds is not a conflict."""
    name = key()
    owner = stream_name("account")
    await store.append(owner, [created()], 0, claims=[Claim(name, owner)])
    await store.append(owner, events(1), 1, claims=[Claim(name, owner)])
    assert await store.claim_owner(name) == owner


async def test_release_then_reclaim_by_another_stream(store: PostgresEventStore, pool: asyncpg.Pool) -> None:
    """After its holder releases a key (in an append), another stream can claim it."""
    name = key()
    first, second = stream_name("account"), stream_name("account")
    await store.append(first, [created()], StreamState.NO_STREAM, claims=[Claim(name, first)])
    await store.append(first, events(1), 1, releases=[name])
    assert await store.claim_owner(name) is None

    await store.append(second, [created()], StreamState.NO_STREAM, claims=[Claim(name, second)])
    assert await store.claim_owner(name) == second
    await assert_stream_is_consistent(pool, second)


async def test_rename_releases_and_claims_in_one_append(store: PostgresEventStore) -> None:
    """One append can give up the old key and take the new one (a rename)."""
    old, new = key(), key()
    stream = stream_name("account")
    await store.append(stream, [created()], 0, claims=[Claim(old, stream)])
    await store.append(stream, events(1), 1, claims=[Claim(new, stream)], releases=[old])
    assert await store.claim_owner(old) is None
    assert await store.claim_owner(new) == stream


async def test_failed_claim_rolls_back_the_release(store: PostgresEventStore, pool: asyncpg.Pool) -> None:
    """When the new key is taken, the release in the same append is undone with everything else."""
    mine, theirs = key(), key()
    me, them = stream_name("account"), stream_name("account")
    await store.append(me, [created()], 0, claims=[Claim(mine, me)])
    await store.append(them, [created()], 0, claims=[Claim(theirs, them)])
    before = await table_counts(pool)

    with pytest.raises(UniquenessViolation):
        await store.append(me, events(1), 1, claims=[Claim(theirs, me)], releases=[mine])

    assert await store.claim_owner(mine) == me
    assert await store.claim_owner(theirs) == them
    assert await table_counts(pool) == before


async def test_retried_append_with_a_claim_succeeds(store: PostgresEventStore) -> None:
    """An idempotent retry of a claiming append is a success, not a violation of its own claim."""
    name = key()
    stream = stream_name("account")
    batch = [created()]
    first = await store.append(stream, batch, StreamState.NO_STREAM, claims=[Claim(name, stream)])
    assert await store.append(stream, batch, StreamState.NO_STREAM, claims=[Claim(name, stream)]) == first
    assert await store.claim_owner(name) == stream


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


async def test_append_many_writes_every_stream_in_one_transaction(
    store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    """A multi-stream append stores each stream's events at its own versions, all in one transaction."""
    account, token = stream_name("account"), stream_name("token")
    await store.append(account, events(2), 0)
    result = await store.append_many(
        [StreamAppend(account, events(1), 2), StreamAppend(token, events(2), StreamState.NO_STREAM)]
    )
    assert [e.stream_version for e in result.events] == [3, 1, 2]
    assert len({e.tx_id for e in result.events}) == 1
    assert await assert_stream_is_consistent(pool, account) == 3
    assert await assert_stream_is_consistent(pool, token) == 2


async def _assert_append_many_writes_nothing(
    store: PostgresEventStore,
    pool: asyncpg.Pool,
    appends: list[StreamAppend],
    error: type[Exception],
    claims: tuple[Claim, ...] = (),
) -> None:
    offered = [e.event_id for a in appends for e in a.events]
    before = await table_counts(pool), await stored_ids(pool, offered)
    with pytest.raises(error):
        await store.append_many(appends, claims)
    assert (await table_counts(pool), await stored_ids(pool, offered)) == before


async def test_append_many_conflict_on_one_stream_writes_nothing(
    store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    """A wrong expected version on the last stream leaves the other streams untouched."""
    existing = stream_name()
    await store.append(existing, events(1), 0)
    fresh_one, fresh_two = stream_name(), stream_name()
    appends = [
        StreamAppend(fresh_one, events(2), StreamState.NO_STREAM),
        StreamAppend(fresh_two, events(1), StreamState.ANY),
        StreamAppend(existing, events(1), StreamState.NO_STREAM),
    ]
    await _assert_append_many_writes_nothing(store, pool, appends, WrongExpectedVersion)
    assert await assert_stream_is_consistent(pool, fresh_one) == 0
    assert await assert_stream_is_consistent(pool, fresh_two) == 0
    assert await assert_stream_is_consistent(pool, existing) == 1


async def test_append_many_claim_conflict_writes_nothing(
    store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    """A uniqueness violation raised for one stream rolls back the other streams' events."""
    name = key()
    holder = stream_name()
    await store.append(holder, [created()], 0, claims=[Claim(name, holder)])
    one, two = stream_name(), stream_name()
    appends = [StreamAppend(one, events(1), 0), StreamAppend(two, events(1), 0)]
    await _assert_append_many_writes_nothing(store, pool, appends, UniquenessViolation, (Claim(name, two),))
    assert await store.claim_owner(name) == holder


async def test_append_many_duplicate_event_id_writes_nothing(
    store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    """An event id already stored elsewhere, in one of the streams, rolls back the whole append."""
    elsewhere = stream_name()
    stored = events(1)
    await store.append(elsewhere, stored, 0)
    one, two = stream_name(), stream_name()
    appends = [StreamAppend(one, events(2), 0), StreamAppend(two, [*events(1), *stored], 0)]
    await _assert_append_many_writes_nothing(store, pool, appends, DuplicateEventId)


async def test_append_many_condition_stream_is_checked_but_not_written(
    store: PostgresEventStore, pool: asyncpg.Pool
) -> None:
    """A stream given with no events is only a condition: at its expected version the other streams
    are written and it is left as it was; once it has moved, the whole append fails and writes nothing."""
    account, token = stream_name("account"), stream_name("token")
    await store.append(account, events(2), 0)
    await store.append_many(
        [StreamAppend(account, [], 2), StreamAppend(token, events(1), StreamState.NO_STREAM)]
    )
    assert await assert_stream_is_consistent(pool, account) == 2
    assert await assert_stream_is_consistent(pool, token) == 1

    await store.append(account, events(1), 2)
    appends = [StreamAppend(account, [], 2), StreamAppend(token, events(1), 1)]
    await _assert_append_many_writes_nothing(store, pool, appends, WrongExpectedVersion)
    assert await assert_stream_is_consistent(pool, token) == 1
