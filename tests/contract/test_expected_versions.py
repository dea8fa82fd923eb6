"""Optimistic concurrency, as every event store keeps it: the four expected-version modes, and that a
losing append leaves nothing behind."""

import pytest

from services.ports import StreamState, WrongExpectedVersion
from tests.contract.subjects import Subject, assert_stream_is_consistent
from tests.integration.eventstore_helpers import event, events, ids, stream_name


async def test_any_appends_to_a_new_and_to_an_existing_stream(subject: Subject) -> None:
    """StreamState.ANY creates a stream and then keeps appending at its end."""
    store, stream = subject.store, stream_name()
    first = await store.append(stream, events(2), StreamState.ANY)
    second = await store.append(stream, events(1), StreamState.ANY)
    assert [e.stream_version for e in first.events] == [1, 2]
    assert [e.stream_version for e in second.events] == [3]
    assert await store.stream_version(stream) == 3
    await assert_stream_is_consistent(subject, stream)


async def test_no_stream_succeeds_once_then_conflicts(subject: Subject) -> None:
    """NO_STREAM creates the stream; a second NO_STREAM append fails with actual = current version."""
    store, stream = subject.store, stream_name()
    await store.append(stream, events(2), StreamState.NO_STREAM)
    loser = events(1)
    with pytest.raises(WrongExpectedVersion) as raised:
        await store.append(stream, loser, StreamState.NO_STREAM)
    assert (raised.value.stream_id, raised.value.expected, raised.value.actual) == (
        stream,
        StreamState.NO_STREAM,
        2,
    )
    assert await subject.stored_ids(ids(loser)) == set()
    assert await assert_stream_is_consistent(subject, stream) == 2


async def test_stream_exists_fails_on_a_new_stream_and_succeeds_on_an_existing_one(subject: Subject) -> None:
    """STREAM_EXISTS refuses a stream without events (actual 0, no row made) and appends to one with."""
    store, stream = subject.store, stream_name()
    with pytest.raises(WrongExpectedVersion) as raised:
        await store.append(stream, events(1), StreamState.STREAM_EXISTS)
    assert (raised.value.stream_id, raised.value.expected, raised.value.actual) == (
        stream,
        StreamState.STREAM_EXISTS,
        0,
    )
    assert await assert_stream_is_consistent(subject, stream) == 0

    await store.append(stream, events(1), StreamState.NO_STREAM)
    result = await store.append(stream, events(2), StreamState.STREAM_EXISTS)
    assert [e.stream_version for e in result.events] == [2, 3]
    await assert_stream_is_consistent(subject, stream)


async def test_exact_version_appends_in_sequence(subject: Subject) -> None:
    """An exact expected version n appends at n+1 when the stream holds exactly n events."""
    store, stream = subject.store, stream_name()
    assert [e.stream_version for e in (await store.append(stream, events(1), 0)).events] == [1]
    assert [e.stream_version for e in (await store.append(stream, events(3), 1)).events] == [2, 3, 4]
    assert [e.stream_version for e in (await store.append(stream, events(1), 4)).events] == [5]
    assert await assert_stream_is_consistent(subject, stream) == 5


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
    subject: Subject, existing: int, expected: int
) -> None:
    """A wrong exact version raises WrongExpectedVersion(stream_id, expected, actual) and stores nothing."""
    store, stream = subject.store, stream_name()
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
    assert await subject.stored_ids(ids(loser)) == set()
    assert await assert_stream_is_consistent(subject, stream) == existing


async def test_losing_appends_draw_no_position(alone: Subject) -> None:
    """The expected version is checked before any position is drawn: positions stay gap-free
    through refused appends."""
    store, stream = alone.store, stream_name()
    for version in range(5):
        await store.append(stream, events(2, start=10 * version), version * 2)
        with pytest.raises(WrongExpectedVersion):
            await store.append(stream, events(2), version * 2)
    after = await store.append(stream, [event()], 10)
    assert after.last_position == 11
    assert await alone.counts() == (11, 1, 0)
