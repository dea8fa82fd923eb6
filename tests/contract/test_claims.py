"""Uniqueness claims taken inside an append, and the atomicity of multi-stream appends, as every
event store keeps them."""

import pytest

from services.ports import (
    Claim,
    DuplicateEventId,
    StreamAppend,
    StreamState,
    UniquenessViolation,
    WrongExpectedVersion,
)
from tests.contract.subjects import Subject, assert_stream_is_consistent
from tests.integration.eventstore_helpers import created, events, ids, new_id, stream_name


def key() -> str:
    return f"account-name:{new_id()}"


async def test_second_stream_claiming_a_key_fails_and_writes_nothing(subject: Subject) -> None:
    """A key held by stream A cannot be claimed by stream B: UniquenessViolation, and B gets neither
    events nor a stream row; A keeps the claim."""
    name = key()
    owner, other = stream_name("account"), stream_name("account")
    await subject.store.append(owner, [created()], StreamState.NO_STREAM, claims=[Claim(name, owner)])
    before = await subject.counts()

    loser = [created()]
    with pytest.raises(UniquenessViolation) as raised:
        await subject.store.append(other, loser, StreamState.NO_STREAM, claims=[Claim(name, other)])

    assert raised.value.claim == name
    assert name in str(raised.value)
    assert await subject.counts() == before
    assert await subject.stored_ids(ids(loser)) == set()
    assert await assert_stream_is_consistent(subject, other) == 0
    assert await subject.store.claim_owner(name) == owner


async def test_the_holder_may_claim_its_key_again(subject: Subject) -> None:
    """Claiming a key the stream already holds is not a conflict."""
    name = key()
    owner = stream_name("account")
    await subject.store.append(owner, [created()], 0, claims=[Claim(name, owner)])
    await subject.store.append(owner, events(1), 1, claims=[Claim(name, owner)])
    assert await subject.store.claim_owner(name) == owner


async def test_release_then_reclaim_by_another_stream(subject: Subject) -> None:
    """After its holder releases a key (in an append), another stream can claim it."""
    name = key()
    first, second = stream_name("account"), stream_name("account")
    await subject.store.append(first, [created()], StreamState.NO_STREAM, claims=[Claim(name, first)])
    await subject.store.append(first, events(1), 1, releases=[name])
    assert await subject.store.claim_owner(name) is None

    await subject.store.append(second, [created()], StreamState.NO_STREAM, claims=[Claim(name, second)])
    assert await subject.store.claim_owner(name) == second
    await assert_stream_is_consistent(subject, second)


async def test_rename_releases_and_claims_in_one_append(subject: Subject) -> None:
    """One append can give up the old key and take the new one (a rename)."""
    old, new = key(), key()
    stream = stream_name("account")
    await subject.store.append(stream, [created()], 0, claims=[Claim(old, stream)])
    await subject.store.append(stream, events(1), 1, claims=[Claim(new, stream)], releases=[old])
    assert await subject.store.claim_owner(old) is None
    assert await subject.store.claim_owner(new) == stream


async def test_failed_claim_rolls_back_the_release(subject: Subject) -> None:
    """When the new key is taken, the release in the same append is undone with everything else."""
    mine, theirs = key(), key()
    me, them = stream_name("account"), stream_name("account")
    await subject.store.append(me, [created()], 0, claims=[Claim(mine, me)])
    await subject.store.append(them, [created()], 0, claims=[Claim(theirs, them)])
    before = await subject.counts()

    with pytest.raises(UniquenessViolation):
        await subject.store.append(me, events(1), 1, claims=[Claim(theirs, me)], releases=[mine])

    assert await subject.store.claim_owner(mine) == me
    assert await subject.store.claim_owner(theirs) == them
    assert await subject.counts() == before


async def test_retried_append_with_a_claim_succeeds(subject: Subject) -> None:
    """An idempotent retry of a claiming append is a success, not a violation of its own claim."""
    name = key()
    stream = stream_name("account")
    batch = [created()]
    first = await subject.store.append(stream, batch, StreamState.NO_STREAM, claims=[Claim(name, stream)])
    retried = await subject.store.append(stream, batch, StreamState.NO_STREAM, claims=[Claim(name, stream)])
    assert retried == first
    assert await subject.store.claim_owner(name) == stream


async def test_append_many_writes_every_stream_in_one_transaction(subject: Subject) -> None:
    """A multi-stream append stores each stream's events at its own versions, all in one transaction."""
    account, token = stream_name("account"), stream_name("token")
    await subject.store.append(account, events(2), 0)
    result = await subject.store.append_many(
        [StreamAppend(account, events(1), 2), StreamAppend(token, events(2), StreamState.NO_STREAM)]
    )
    assert [e.stream_version for e in result.events] == [3, 1, 2]
    assert len({e.tx_id for e in result.events}) == 1
    assert await assert_stream_is_consistent(subject, account) == 3
    assert await assert_stream_is_consistent(subject, token) == 2


async def _assert_append_many_writes_nothing(
    subject: Subject,
    appends: list[StreamAppend],
    error: type[Exception],
    claims: tuple[Claim, ...] = (),
) -> None:
    offered = [e.event_id for a in appends for e in a.events]
    before = await subject.counts(), await subject.stored_ids(offered)
    with pytest.raises(error):
        await subject.store.append_many(appends, claims=claims)
    assert (await subject.counts(), await subject.stored_ids(offered)) == before


async def test_append_many_conflict_on_one_stream_writes_nothing(subject: Subject) -> None:
    """A wrong expected version on the last stream leaves the other streams untouched."""
    existing = stream_name()
    await subject.store.append(existing, events(1), 0)
    fresh_one, fresh_two = stream_name(), stream_name()
    appends = [
        StreamAppend(fresh_one, events(2), StreamState.NO_STREAM),
        StreamAppend(fresh_two, events(1), StreamState.ANY),
        StreamAppend(existing, events(1), StreamState.NO_STREAM),
    ]
    await _assert_append_many_writes_nothing(subject, appends, WrongExpectedVersion)
    assert await assert_stream_is_consistent(subject, fresh_one) == 0
    assert await assert_stream_is_consistent(subject, fresh_two) == 0
    assert await assert_stream_is_consistent(subject, existing) == 1


async def test_append_many_claim_conflict_writes_nothing(subject: Subject) -> None:
    """A uniqueness violation raised for one stream rolls back the other streams' events."""
    name = key()
    holder = stream_name()
    await subject.store.append(holder, [created()], 0, claims=[Claim(name, holder)])
    one, two = stream_name(), stream_name()
    appends = [StreamAppend(one, events(1), 0), StreamAppend(two, events(1), 0)]
    await _assert_append_many_writes_nothing(subject, appends, UniquenessViolation, (Claim(name, two),))
    assert await subject.store.claim_owner(name) == holder


async def test_append_many_duplicate_event_id_writes_nothing(subject: Subject) -> None:
    """An event id already stored elsewhere, in one of the streams, rolls back the whole append."""
    elsewhere = stream_name()
    stored = events(1)
    await subject.store.append(elsewhere, stored, 0)
    one, two = stream_name(), stream_name()
    appends = [StreamAppend(one, events(2), 0), StreamAppend(two, [*events(1), *stored], 0)]
    await _assert_append_many_writes_nothing(subject, appends, DuplicateEventId)


async def test_append_many_condition_stream_is_checked_but_not_written(subject: Subject) -> None:
    """A stream given with no events is only a condition: at its expected version the other streams
    are written and it is left as it was; once it has moved, the whole append fails and writes nothing."""
    account, token = stream_name("account"), stream_name("token")
    await subject.store.append(account, events(2), 0)
    await subject.store.append_many(
        [StreamAppend(account, [], 2), StreamAppend(token, events(1), StreamState.NO_STREAM)]
    )
    assert await assert_stream_is_consistent(subject, account) == 2
    assert await assert_stream_is_consistent(subject, token) == 1

    await subject.store.append(account, events(1), 2)
    appends = [StreamAppend(account, [], 2), StreamAppend(token, events(1), 1)]
    await _assert_append_many_writes_nothing(subject, appends, WrongExpectedVersion)
    assert await assert_stream_is_consistent(subject, token) == 1
