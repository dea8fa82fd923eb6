"""Malformed appends are refused with InvalidAppend before anything is written, by every event
store alike (both adapters check requests with ``services.append_request``)."""

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from events import Event, NewEvent
from events.accounts import AccountCreated
from services.append_request import MAX_EVENT_BYTES, MAX_EVENTS_PER_APPEND, MAX_STREAM_ID_LENGTH
from services.ports import Claim, EventStore, InvalidAppend, StreamAppend, StreamState
from tests.contract.subjects import Subject
from tests.integration.eventstore_helpers import TableCounts, created, event, events, metadata, stream_name


class Unregistered(Event, frozen=True, tag="test.unregistered"):
    """A well-formed event whose tag is in no registry."""

    value: int


class Impostor(Event, frozen=True, tag="account.created"):
    """Uses a registered tag, but is not the class registered for it."""

    account_id: str


@pytest.fixture
async def seeded(subject: Subject) -> Subject:
    """The store holding stream ``existing`` with claim ``k``, so counts and conditions mean something."""
    if not await subject.store.stream_version("existing"):
        await subject.store.append(
            "existing", [created()], StreamState.NO_STREAM, claims=[Claim("k", "existing")]
        )
    return subject


def _raw(value: Any, **fields: Any) -> NewEvent:
    """A NewEvent around any value: msgspec does not check types when a Struct is constructed."""
    return NewEvent(event=value, metadata=fields.pop("metadata", metadata()), **fields)


Append = Callable[[EventStore], Any]
same_id = uuid.uuid4()

BAD_APPENDS: dict[str, tuple[Append, str]] = {
    "unregistered event class": (
        lambda s: s.append(
            "s", [NewEvent(event=Unregistered(value=1), metadata=metadata())], StreamState.ANY
        ),
        "unknown event type 'test.unregistered'",
    ),
    "impostor of a registered tag": (
        lambda s: s.append(
            "s", [NewEvent(event=Impostor(account_id="a"), metadata=metadata())], StreamState.ANY
        ),
        "Impostor is not the registered class for 'account.created'",
    ),
    "not an event": (
        lambda s: s.append("s", [_raw({"type": "account.created"})], StreamState.ANY),
        "the event is not an Event: dict",
    ),
    "not a NewEvent": (
        lambda s: s.append("s", [AccountCreated(account_id="a", name="a")], StreamState.ANY),
        "NewEvent",
    ),
    "metadata not Metadata": (
        lambda s: s.append("s", [_raw(event().event, metadata={})], StreamState.ANY),
        "the metadata is not a Metadata: dict",
    ),
    "event id not a UUID": (
        lambda s: s.append("s", [_raw(event().event, event_id=str(uuid.uuid4()))], StreamState.ANY),
        "event id must be a uuid.UUID, not str",
    ),
    "oversized payload": (
        lambda s: s.append(
            "s",
            [NewEvent(event=AccountCreated(account_id="a", name="x" * MAX_EVENT_BYTES), metadata=metadata())],
            StreamState.ANY,
        ),
        f"the limit is {MAX_EVENT_BYTES}",
    ),
    "oversized metadata": (
        lambda s: s.append(
            "s",
            [NewEvent(event=event().event, metadata=metadata(correlation_id="c" * MAX_EVENT_BYTES))],
            StreamState.ANY,
        ),
        f"metadata is .* bytes; the limit is {MAX_EVENT_BYTES}",
    ),
    "expected version str": (lambda s: s.append("s", events(1), "0"), "not str"),
    "expected version float": (lambda s: s.append("s", events(1), 1.0), "not float"),
    "expected version True": (lambda s: s.append("s", events(1), True), "not bool"),
    "expected version False": (lambda s: s.append("s", events(1), False), "not bool"),
    "expected version None": (lambda s: s.append("s", events(1), None), "not NoneType"),
    "expected version -1 as int": (lambda s: s.append("s", events(1), -1), "must be >= 0, got -1"),
    "expected version -4": (lambda s: s.append("s", events(1), -4), "must be >= 0, got -4"),
    "empty stream id": (lambda s: s.append("", events(1), StreamState.ANY), "stream id must be a non-empty"),
    "stream id not a str": (
        lambda s: s.append(42, events(1), StreamState.ANY),
        "stream id must be a non-empty",
    ),
    "stream id too long": (
        lambda s: s.append("s" * (MAX_STREAM_ID_LENGTH + 1), events(1), StreamState.ANY),
        f"at most {MAX_STREAM_ID_LENGTH}",
    ),
    "empty event list": (
        lambda s: s.append("s", [], StreamState.ANY),
        "no events for 's' and no expected version to check",
    ),
    "nothing at all": (lambda s: s.append_many([]), "nothing to append"),
    "only conditions": (lambda s: s.append_many([StreamAppend("existing", [], 1)]), "nothing to append"),
    "duplicate ids in one append": (
        lambda s: s.append("s", [event(1, event_id=same_id), event(2, event_id=same_id)], StreamState.ANY),
        "the same event id appears twice",
    ),
    "duplicate ids across streams": (
        lambda s: s.append_many(
            [
                StreamAppend("a", [event(1, event_id=same_id)], StreamState.ANY),
                StreamAppend("b", [event(2, event_id=same_id)], StreamState.ANY),
            ]
        ),
        "the same event id appears twice",
    ),
    "one stream twice": (
        lambda s: s.append_many(
            [StreamAppend("a", events(1), StreamState.ANY), StreamAppend("a", events(1), StreamState.ANY)]
        ),
        "stream 'a' appears twice",
    ),
    "claim for a stream not written": (
        lambda s: s.append("s", events(1), StreamState.ANY, claims=[Claim("k2", "other")]),
        "claim 'k2' names a stream this append does not write",
    ),
    "too many events": (
        lambda s: s.append("s", events(MAX_EVENTS_PER_APPEND + 1), StreamState.ANY),
        f"the limit is {MAX_EVENTS_PER_APPEND}",
    ),
}


@pytest.mark.parametrize("case", list(BAD_APPENDS))
async def test_bad_append_raises_invalid_append_and_writes_nothing(seeded: Subject, case: str) -> None:
    """Each malformed request raises InvalidAppend with a message naming the problem; nothing changes."""
    before = await seeded.counts()
    append, message = BAD_APPENDS[case]
    with pytest.raises(InvalidAppend, match=message):
        await append(seeded.store)
    assert await seeded.counts() == before


async def test_a_valid_append_still_works_after_refusals(seeded: Subject) -> None:
    """Refused requests leave the store usable (nothing half-sent on a pool's connections)."""
    store = seeded.store
    before = await seeded.counts()
    for append, _ in BAD_APPENDS.values():
        with pytest.raises(InvalidAppend):
            await append(store)
    stream = stream_name("valid-after-refusals")
    await store.append(stream, events(2), StreamState.NO_STREAM)
    assert [e.stream_version for e in await store.read_stream(stream)] == [1, 2]
    assert await seeded.counts() == TableCounts(before.events + 2, before.streams + 1, before.claims)
