"""What the log wraps around an event: metadata on the way in, position and version on the way out."""

import uuid
from datetime import datetime
from typing import NamedTuple

import msgspec

from events.base import Event


class Metadata(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Who caused an event and why. ``actor`` is an account id, ``system:<component>``, or None."""

    occurred_at: datetime
    actor: str | None = None
    actor_token_id: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    via: str | None = None
    """The door the command came through when it is not the API: ``console`` for the web console."""


class NewEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event about to be appended. ``event_id`` makes the append idempotent: derive it from the
    command (or its Idempotency-Key) so that a retry carries the same id."""

    event: Event
    metadata: Metadata
    event_id: uuid.UUID = msgspec.field(default_factory=uuid.uuid4)


class LogCursor(NamedTuple):
    """A place in the log in commit-safe order: (transaction id, global position).

    Positions are drawn before commit, so they commit out of order; ordering by the writing
    transaction's id first, and reading only transactions older than every running one, is what
    makes a tail gap-safe. Compare cursors as tuples.
    """

    tx_id: int
    position: int


LOG_START = LogCursor(0, 0)


class RecordedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event as stored in the log."""

    global_position: int
    tx_id: int
    stream_id: str
    stream_version: int
    event_id: uuid.UUID
    event: Event
    metadata: Metadata
    recorded_at: datetime

    @property
    def cursor(self) -> LogCursor:
        return LogCursor(self.tx_id, self.global_position)

    @property
    def type(self) -> str:
        return self.event.tag()
