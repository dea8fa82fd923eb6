"""The one way an aggregate (a system account, a team, a token) is loaded from its own stream and its
decisions appended there, for every handler of the command side.

``Aggregate`` says how one kind is kept: its stream, its empty state and ``evolve`` (so its
``fold``), when it is live (what a retry's outcome is superseded by losing), and what a uniqueness
claim held by another stream means for it. ``load`` folds the stream and finds this command's own
events in it when the command is a retry (``services.commands.recorded``); ``append`` appends a
decision's events at the version the state was folded to, in one append with conditions on other
streams and the claims it takes and releases, and folds them into the ``Outcome``.

Only ``events``, the ports and the values every handler shares are imported: the repository runs
the same on the PostgreSQL store and the in-memory one.
"""

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Generic, Protocol, TypeVar

import msgspec

from events import Event, RecordedEvent
from services.commands import CommandContext, Conflict, Outcome, Recorded, Unchanged, recorded
from services.ports import Claim, EventStore, StreamAppend, StreamState, UniquenessViolation


class Versioned(Protocol):
    @property
    def version(self) -> int: ...


S = TypeVar("S", bound=Versioned)


class Aggregate(msgspec.Struct, Generic[S], frozen=True, kw_only=True):
    """How one kind of aggregate is kept in its stream."""

    stream_of: Callable[[str], str]
    empty: Callable[[str], S]
    """The state of an aggregate whose stream holds nothing yet."""
    evolve: Callable[[S, Event, int, datetime], S]
    """The state after an event, the stream's n-th, which occurred at a time."""
    id_of: Callable[[S], str]
    live: Callable[[S], bool]
    duplicate: str | None = None
    """The ``Conflict`` a uniqueness claim held by another stream is (None: none is expected)."""

    def fold(self, aggregate_id: str, history: Sequence[RecordedEvent]) -> S:
        state = self.empty(aggregate_id)
        for event in history:
            state = self.evolve(state, event.event, event.stream_version, event.metadata.occurred_at)
        return state


async def load(
    store: EventStore, kind: Aggregate[S], ctx: CommandContext, aggregate_id: str, *, new: bool = False
) -> tuple[S, Recorded[S] | None]:
    """The aggregate's state, and this command's own events when it is a retry of one recorded.
    ``new``: the id was just drawn, so without an idempotency key its stream is empty (not read)."""
    if new and ctx.idempotency_key is None:
        return kind.empty(aggregate_id), None
    stream = kind.stream_of(aggregate_id)
    history = await store.read_stream(stream)
    state = kind.fold(aggregate_id, history)
    return state, recorded(ctx, stream, history, state, partial(kind.fold, aggregate_id), kind.live)


async def append(
    store: EventStore,
    kind: Aggregate[S],
    ctx: CommandContext,
    state: S,
    events: Sequence[Event],
    *,
    conditions: Sequence[StreamAppend] = (),
    claims: Sequence[Claim] = (),
    releases: Sequence[str] = (),
) -> Outcome[S]:
    """``events`` appended to the stream ``state`` was folded from, with ``conditions`` (other
    streams' appends or expected versions); when there are none, nothing is appended and the outcome
    says what it was decided on (``Unchanged``)."""
    stream = kind.stream_of(kind.id_of(state))
    if not events:
        return Outcome(state, None, Unchanged(stream, state.version))
    expected = state.version or StreamState.NO_STREAM
    own = StreamAppend(stream, ctx.new_events(stream, events), expected)
    try:
        result = await store.append_many([own, *conditions], claims=claims, releases=releases)
    except UniquenessViolation:
        if kind.duplicate is None:
            raise
        raise Conflict(kind.duplicate) from None
    new_state = state
    for event, appended in zip(events, result.events[: len(events)], strict=True):
        new_state = kind.evolve(new_state, event, appended.stream_version, ctx.now)
    return Outcome(new_state, result.cursor)
