"""The two adapters are interchangeable: any sequence of appends (any expected versions, event ids
new or reused, claims taken and released, condition streams) gets the same answer from the
in-memory store as from PostgreSQL, append by append, and leaves the same streams and claims."""

import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events import NewEvent
from events.accounts import AccountDisabled
from services.eventstore import PostgresEventStore
from services.memory_store import MemoryEventStore
from services.ports import (
    Claim,
    EventStore,
    EventStoreError,
    StreamAppend,
    StreamState,
    UniquenessViolation,
    WrongExpectedVersion,
)
from tests.integration.eventstore_helpers import event, metadata

STREAMS = ("a", "b", "c")
KEYS = ("k1", "k2")
EXPECTED = st.sampled_from(
    ["current", "current", StreamState.ANY, StreamState.NO_STREAM, StreamState.STREAM_EXISTS, 0, 1, 2, 3]
)
"""``current``: the stream's version when the append is made (mostly a success, unless reused ids)."""
PICKS = st.sampled_from(["new", "new", "new", "earlier", "retyped"])
"""A new event, one offered before (stored or refused), or an earlier id with another type."""


@st.composite
def stream_appends(draw: st.DrawFn) -> dict[str, Any]:
    """One append_many in the abstract: streams, each with new or earlier events, claims, releases.
    An earlier event is named by its index in the history of events offered so far."""
    streams = draw(st.lists(st.sampled_from(STREAMS), min_size=1, max_size=2, unique=True))
    parts = []
    for stream in streams:
        picks = draw(st.lists(st.tuples(PICKS, st.integers(0, 30)), max_size=3))
        parts.append((stream, picks, draw(EXPECTED)))
    claims = draw(st.lists(st.tuples(st.sampled_from(KEYS), st.sampled_from(streams)), max_size=2))
    releases = draw(st.lists(st.sampled_from(KEYS), max_size=1))
    return {"parts": parts, "claims": claims, "releases": releases}


class _Run:
    """The same abstract appends, made concrete once and sent to both stores."""

    def __init__(self) -> None:
        self.namespace = uuid.uuid4().hex[:10]
        self.history: list[NewEvent] = []

    def stream(self, name: str) -> str:
        return f"eq-{self.namespace}-{name}"

    def key(self, name: str) -> str:
        return f"eq:{self.namespace}:{name}"

    async def concrete(
        self, spec: dict[str, Any], store: EventStore
    ) -> tuple[list[StreamAppend], list[Claim], list[str]]:
        appends = []
        for stream, picks, expected in spec["parts"]:
            offered = [self._event(*pick) for pick in picks]
            if expected == "current":
                expected = await store.stream_version(self.stream(stream))
            appends.append(StreamAppend(self.stream(stream), offered, expected))
        claims = [Claim(self.key(k), self.stream(s)) for k, s in spec["claims"]]
        return appends, claims, [self.key(k) for k in spec["releases"]]

    def _event(self, pick: str, index: int) -> NewEvent:
        if pick == "new" or not self.history:
            chosen = event(len(self.history))
        elif pick == "retyped":
            earlier = self.history[index % len(self.history)].event_id
            chosen = NewEvent(event=AccountDisabled(account_id="acc"), metadata=metadata(), event_id=earlier)
        else:
            chosen = self.history[index % len(self.history)]
        self.history.append(chosen)
        return chosen

    def answer(self, outcome: object) -> object:
        """What an append answered, without what legitimately differs (positions, transaction ids)."""
        match outcome:
            case WrongExpectedVersion():
                return ("wrong version", outcome.stream_id, outcome.expected, outcome.actual)
            case UniquenessViolation():
                return ("claim held", outcome.claim)
            case EventStoreError():
                return type(outcome).__name__
        return [(e.event_id, e.stream_version) for e in outcome.events]  # type: ignore[attr-defined]

    async def state(self, store: EventStore) -> object:
        streams = {
            name: [(e.event_id, e.stream_version, e.type) for e in await store.read_stream(self.stream(name))]
            for name in STREAMS
        }
        versions = [await store.stream_version(self.stream(name)) for name in STREAMS]
        return streams, versions, await store.claims_with_prefix(self.key(""))


async def _outcome(store: EventStore, append: tuple[list[StreamAppend], list[Claim], list[str]]) -> object:
    appends, claims, releases = append
    try:
        return await store.append_many(appends, claims=claims, releases=releases)
    except EventStoreError as error:
        return error


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(specs=st.lists(stream_appends(), min_size=1, max_size=12))
async def test_the_in_memory_store_answers_as_postgresql_does(
    store: PostgresEventStore, specs: list[dict[str, Any]]
) -> None:
    run, memory = _Run(), MemoryEventStore()
    for spec in specs:
        append = await run.concrete(spec, memory)
        expected = run.answer(await _outcome(store, append))
        assert run.answer(await _outcome(memory, append)) == expected, spec
        assert await run.state(memory) == await run.state(store)
