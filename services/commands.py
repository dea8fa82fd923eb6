"""What every command handler shares: who is acting and when, how new ids are drawn, and the
domain errors a decision may raise (the API maps them to problem+json; the domain knows no HTTP).

Ids and event ids are random, except under an idempotency key (a door's key, scoped by the dispatcher
to the credential and the command, or a scheduler's deadline): then they are derived from the actor,
the key and a label, so a retried command produces the very same events. Before deciding again, a
handler asks ``recorded`` whether its events are already in its stream: if so it answers with the
outcome folded from the stream up to them (the original answer), or refuses with ``Superseded`` when
what the command made has since been deleted; it never decides a second time. A keyed command that
changed nothing leaves no event: its outcome says what it was decided on (``Unchanged``, which the
dispatcher keeps with the key's claim), and a retry is given that back in its context, so that
``recorded`` answers it as of then too.
"""

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Generic, TypeVar

import msgspec

from events import Event, LogCursor, Metadata, NewEvent, RecordedEvent
from services.ports import WrongExpectedVersion

_IDEMPOTENT_IDS = uuid.UUID("7b1f3c2e-5d4a-4e8b-9c6f-0a1b2c3d4e5f")
MAX_ATTEMPTS = 5

T = TypeVar("T")
S = TypeVar("S")


class DomainError(Exception):
    """A command was refused; nothing was written."""


class NotFound(DomainError):
    pass


class Conflict(DomainError):
    pass


class Forbidden(DomainError):
    pass


class Superseded(Conflict):
    """A retried command had been carried out, but what it made or changed is gone since (deleted,
    revoked, rotated out): its original answer would hand out something that no longer works."""


class Invalid(DomainError):
    """A request value breaks a rule that only the domain knows (policy, catalogue, state)."""

    def __init__(self, field: str, reason: str, rule: str = "invalid", choices: Sequence[str] = ()) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.rule = rule
        self.choices = tuple(choices)
        """The allowed values, for ``rule="enum"``."""


class Unchanged(msgspec.Struct, frozen=True):
    """A command that changed nothing: the stream its answer was decided on, at that version."""

    stream_id: str
    version: int


class CommandContext(msgspec.Struct, frozen=True, kw_only=True):
    now: datetime
    actor: str | None = None
    actor_token_id: str | None = None
    correlation_id: str | None = None
    idempotency_key: str | None = None
    unchanged: Unchanged | None = None
    """A retry of a keyed command that changed nothing: what its answer was decided on."""
    via: str | None = None
    """Recorded in every event's metadata: the door other than the API (``console``)."""

    def derivation(self, label: str) -> str | None:
        """What the values this command draws for ``label`` are derived from on every retry (the
        actor, the idempotency key, the label); None without a key: draw them at random."""
        if self.idempotency_key is None:
            return None
        return f"{self.actor}\x00{self.idempotency_key}\x00{label}"

    def new_id(self, label: str) -> str:
        """A fresh id, or under an idempotency key the same id for the same label on every retry."""
        derivation = self.derivation(label)
        if derivation is None:
            return str(uuid.uuid4())
        return str(uuid.uuid5(_IDEMPOTENT_IDS, derivation))

    def event_id(self, stream_id: str, n: int) -> uuid.UUID:
        """The id of this command's ``n``-th event in ``stream_id``."""
        return uuid.UUID(self.new_id(f"{stream_id}#{n}"))

    def metadata(self) -> Metadata:
        return Metadata(
            occurred_at=self.now,
            actor=self.actor,
            actor_token_id=self.actor_token_id,
            correlation_id=self.correlation_id,
            via=self.via,
        )

    def new_events(self, stream_id: str, events: Sequence[Event]) -> tuple[NewEvent, ...]:
        metadata = self.metadata()
        return tuple(
            NewEvent(event=event, metadata=metadata, event_id=self.event_id(stream_id, n))
            for n, event in enumerate(events)
        )


async def with_retries(attempt: Callable[[], Awaitable[T]]) -> T:
    """Runs load-decide-append again when another writer got to a stream first."""
    for _ in range(MAX_ATTEMPTS - 1):
        try:
            return await attempt()
        except WrongExpectedVersion:
            continue
    return await attempt()


class Outcome(msgspec.Struct, Generic[S], frozen=True):
    """A handler's result: the new write-model state and the log cursor its events reached (None
    when the command changed nothing), for read-your-writes; for a command that changed nothing,
    what its answer was decided on (so that a retry under its key is answered the same)."""

    state: S
    cursor: LogCursor | None
    unchanged: Unchanged | None = None


class Recorded(msgspec.Struct, Generic[S], frozen=True):
    """A retried command found in its stream: its outcome (the state its events left and the
    cursor they reached), those events as recorded, and whether that outcome is gone since (its
    events left a live aggregate that is not live any more)."""

    outcome: Outcome[S]
    events: tuple[Event, ...]
    superseded: bool

    def original(self, *, holds: bool = True) -> Outcome[S]:
        """The original answer; ``Superseded`` when it would describe something deleted since, or
        when ``holds`` is False: the handler saw that what the command made or changed is undone
        (an assignment ended, a membership ended, the token's account deleted). Handlers call it
        after their authorisation checks, as they would decide."""
        if self.superseded or not holds:
            raise Superseded(
                "this request was carried out before, but what it made or changed"
                " has since been deleted or undone"
            )
        return self.outcome


def recorded(
    ctx: CommandContext,
    stream_id: str,
    history: Sequence[RecordedEvent],
    current: S,
    fold: Callable[[list[RecordedEvent]], S],
    live: Callable[[S], bool],
) -> Recorded[S] | None:
    """This command's events in ``history`` (the whole of ``stream_id``, which folds to
    ``current``), or None when it has not written there (or has no idempotency key). A retry of a
    command that changed nothing (``ctx.unchanged``) is found as the stream was then, with no events."""
    if ctx.idempotency_key is None:
        return None
    if ctx.unchanged is not None and ctx.unchanged.stream_id == stream_id:
        then = fold(list(history[: ctx.unchanged.version]))
        return Recorded(Outcome(then, None, ctx.unchanged), (), live(then) and not live(current))
    first = ctx.event_id(stream_id, 0)
    start = next((i for i, event in enumerate(history) if event.event_id == first), None)
    if start is None:
        return None
    end = start + 1
    while end < len(history) and history[end].event_id == ctx.event_id(stream_id, end - start):
        end += 1
    original = fold(list(history[:end]))
    last = history[end - 1]
    cursor = LogCursor(last.tx_id, last.global_position)
    events = tuple(event.event for event in history[start:end])
    return Recorded(Outcome(original, cursor), events, live(original) and not live(current))
