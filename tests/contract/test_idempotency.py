"""Idempotent appends, as every event store keeps them: a retry with the same event ids is a success
that stores nothing new; event ids reused anywhere else are an error that stores nothing."""

import pytest

from events import NewEvent
from events.accounts import AccountDisabled
from services.ports import DuplicateEventId, StreamAppend, StreamState
from tests.contract.subjects import Subject, assert_stream_is_consistent
from tests.integration.eventstore_helpers import event, events, ids, metadata, stream_name


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
    subject: Subject, prepare: int, expected: int
) -> None:
    """An identical retry (same ids, same mode) returns the first append's positions and versions and
    stores nothing new, in every expected-version mode."""
    stream = stream_name()
    if prepare:
        await subject.store.append(stream, events(prepare), StreamState.NO_STREAM)
    batch = events(3)
    first = await subject.store.append(stream, batch, expected)
    before = await subject.counts()

    retried = await subject.store.append(stream, batch, expected)

    assert retried == first
    assert [e.event_id for e in retried.events] == ids(batch)
    assert [e.stream_version for e in retried.events] == [prepare + 1, prepare + 2, prepare + 3]
    assert await subject.counts() == before
    assert await assert_stream_is_consistent(subject, stream) == prepare + 3


async def test_retry_succeeds_after_the_stream_moved_on(subject: Subject) -> None:
    """A retry in exact mode whose events are stored right after the expected version succeeds even
    though later events were appended since (it is the same append, not a conflict)."""
    stream = stream_name()
    batch = events(2)
    first = await subject.store.append(stream, batch, 0)
    await subject.store.append(stream, events(3), 2)

    retried = await subject.store.append(stream, batch, 0)

    assert retried == first
    assert await assert_stream_is_consistent(subject, stream) == 5


async def test_retry_of_a_multi_stream_append_returns_the_stored_result(subject: Subject) -> None:
    """append_many is idempotent too: the retry returns every stream's stored events."""
    one, two = stream_name(), stream_name()
    request = [StreamAppend(one, events(2), StreamState.NO_STREAM), StreamAppend(two, events(1), 0)]
    first = await subject.store.append_many(request)
    before = await subject.counts()

    assert await subject.store.append_many(request) == first
    assert await subject.counts() == before


async def test_event_id_reused_in_another_stream_is_refused(subject: Subject) -> None:
    """An event id stored in stream A, appended to stream B, raises DuplicateEventId and writes nothing."""
    first, second = stream_name(), stream_name()
    batch = events(1)
    await subject.store.append(first, batch, StreamState.ANY)
    before = await subject.counts()

    for expected in (StreamState.ANY, StreamState.NO_STREAM, 0):
        with pytest.raises(DuplicateEventId):
            await subject.store.append(second, batch, expected)

    assert await subject.counts() == before
    assert await assert_stream_is_consistent(subject, second) == 0
    assert await assert_stream_is_consistent(subject, first) == 1


@pytest.mark.parametrize(
    "case",
    [
        "other-expected-version",
        "reordered",
        "stored-plus-new",
        "subset-at-wrong-place",
        "later-events-as-a-new-stream",
        "other-type",
    ],
)
async def test_event_id_reused_at_another_place_is_refused(subject: Subject, case: str) -> None:
    """Stored ids offered at another version, in another order, mixed with new events, or with another
    type are not a retry: DuplicateEventId, and nothing (not even the new events) is written."""
    stream = stream_name()
    a, b = event(1), event(2)
    await subject.store.append(stream, [a, b], 0)
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
        case "later-events-as-a-new-stream":
            offered, expected = [b], StreamState.NO_STREAM
        case _:
            disabled = NewEvent(
                event=AccountDisabled(account_id="acc"), metadata=metadata(), event_id=a.event_id
            )
            offered, expected = [disabled, b], 0
    before = await subject.counts()

    with pytest.raises(DuplicateEventId):
        await subject.store.append(stream, offered, expected)

    assert await subject.counts() == before
    assert await subject.stored_ids([fresh.event_id]) == set()
    assert await assert_stream_is_consistent(subject, stream) == 2
