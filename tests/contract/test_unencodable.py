"""Text PostgreSQL cannot store (U+0000, lone surrogates: what a NUL byte or undecodable bytes from a
client become) is refused with InvalidAppend by every event store and writes nothing, wherever it
sits in an append; any other text is stored and read back unchanged."""

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events import NewEvent
from events.accounts import AccountCreated
from events.tokens import TokenUsed
from services.ports import Claim, EventStore, InvalidAppend, StreamState
from tests.contract.subjects import Subject
from tests.integration.eventstore_helpers import created, metadata, stream_name


def _used(**fields: Any) -> NewEvent:
    values = {"token_id": "t", "account_id": "a", "used_at": metadata().occurred_at, "operation": "GET /v3/x"}
    return NewEvent(event=TokenUsed(**{**values, **fields}), metadata=metadata())


Append = Callable[[EventStore], Any]

UNSTORABLE: dict[str, Append] = {
    "NUL in an event field": lambda s: s.append("s", [_used(operation="GET /v3/nope\x00")], StreamState.ANY),
    "lone surrogate in an event field": lambda s: s.append(
        "s", [_used(user_agent="curl/\udcff")], StreamState.ANY
    ),
    "NUL in metadata": lambda s: s.append(
        "s", [NewEvent(event=created().event, metadata=metadata(correlation_id="c\x00"))], StreamState.ANY
    ),
    "lone surrogate in metadata": lambda s: s.append(
        "s", [NewEvent(event=created().event, metadata=metadata(correlation_id="x\ud800"))], StreamState.ANY
    ),
    "NUL in a stream id": lambda s: s.append("s\x00", [created()], StreamState.ANY),
    "lone surrogate in a stream id": lambda s: s.append("s\udcff", [created()], StreamState.ANY),
    "NUL in a claim": lambda s: s.append("s", [created()], StreamState.ANY, claims=[Claim("name:\x00", "s")]),
    "lone surrogate in a claim": lambda s: s.append(
        "s", [created()], StreamState.ANY, claims=[Claim("name:\udcff", "s")]
    ),
    "NUL in a release": lambda s: s.append("s", [created()], StreamState.ANY, releases=["name:\x00"]),
    "lone surrogate in a release": lambda s: s.append("s", [created()], StreamState.ANY, releases=["\udcff"]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(UNSTORABLE))
async def test_unstorable_text_is_an_invalid_append_and_writes_nothing(subject: Subject, case: str) -> None:
    before = await subject.counts()
    with pytest.raises(InvalidAppend):
        await UNSTORABLE[case](subject.store)
    assert await subject.counts() == before


async def test_text_that_only_spells_an_escape_is_stored_as_it_is(subject: Subject) -> None:
    """A backslash followed by ``u0000`` is text, not U+0000: JSON escapes the backslash."""
    store = subject.store
    stream = stream_name()
    for operation in ("GET /v3/\\u0000", "GET /v3/\\\\u0000", "tab\t\x1b[31m\u202e\U0001f600"):
        await store.append(stream, [_used(operation=operation)], StreamState.ANY)
    stored = [e.event.operation for e in await store.read_stream(stream)]  # type: ignore[attr-defined]
    assert stored == ["GET /v3/\\u0000", "GET /v3/\\\\u0000", "tab\t\x1b[31m\u202e\U0001f600"]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=st.text(st.characters(categories=None), max_size=40), correlation=st.text(max_size=20))
async def test_any_text_is_stored_unchanged_or_refused_with_nothing_written(
    subject: Subject, name: str, correlation: str
) -> None:
    """Any code points at all (surrogates and NUL included) in an event and its metadata: either
    the append succeeds and reads back equal, or it is InvalidAppend and nothing changed."""
    store = subject.store
    stream = stream_name()
    event = NewEvent(
        event=AccountCreated(account_id=stream, name=name), metadata=metadata(correlation_id=correlation)
    )
    before = await subject.counts()
    try:
        await store.append(
            stream, [event], StreamState.NO_STREAM, claims=[Claim(f"name:{stream}:{name}", stream)]
        )
    except InvalidAppend:
        assert await subject.counts() == before
        assert "\x00" in name + correlation or any("\ud800" <= c <= "\udfff" for c in name + correlation)
        return
    [stored] = await store.read_stream(stream)
    assert stored.event == event.event and stored.metadata == event.metadata
