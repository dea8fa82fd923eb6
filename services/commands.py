"""What every command handler shares: who is acting and when, how new ids are drawn, and the
domain errors a decision may raise (the API maps them to problem+json; the domain knows no HTTP).

Ids and event ids are random, except under an ``Idempotency-Key``: then they are derived from the
actor, the key and a label, so a retried command produces the very same events and the event store
recognises the retry instead of writing twice.
"""

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Generic, TypeVar

import msgspec

from events import Event, LogCursor, Metadata, NewEvent
from services.eventstore import WrongExpectedVersion

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


class Invalid(DomainError):
    """A request value breaks a rule that only the domain knows (policy, catalogue, state)."""

    def __init__(self, field: str, reason: str, rule: str = "invalid", choices: Sequence[str] = ()) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.rule = rule
        self.choices = tuple(choices)
        """The allowed values, for ``rule="enum"``."""


class CommandContext(msgspec.Struct, frozen=True, kw_only=True):
    now: datetime
    actor: str | None = None
    actor_token_id: str | None = None
    correlation_id: str | None = None
    idempotency_key: str | None = None

    def new_id(self, label: str) -> str:
        """A fresh id, or under an Idempotency-Key the same id for the same label on every retry."""
        if self.idempotency_key is None:
            return str(uuid.uuid4())
        return str(uuid.uuid5(_IDEMPOTENT_IDS, f"{self.actor}\x00{self.idempotency_key}\x00{label}"))

    def metadata(self) -> Metadata:
        return Metadata(
            occurred_at=self.now,
            actor=self.actor,
            actor_token_id=self.actor_token_id,
            correlation_id=self.correlation_id,
        )

    def new_events(self, stream_id: str, events: Sequence[Event]) -> list[NewEvent]:
        metadata = self.metadata()
        return [
            NewEvent(event=event, metadata=metadata, event_id=uuid.UUID(self.new_id(f"{stream_id}#{n}")))
            for n, event in enumerate(events)
        ]


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
    when the command changed nothing), for read-your-writes."""

    state: S
    cursor: LogCursor | None
