"""The event store as the core sees it: the storage protocol command handlers call, the values
they pass and get back, and the errors it raises. No driver is imported here: the PostgreSQL store
(``services.eventstore``) and the in-memory store are adapters of this port, held to one contract
suite.
"""

import enum
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import msgspec

from events import LogCursor, NewEvent, RecordedEvent


class EventStoreError(Exception):
    """Base of every error the store raises on purpose."""


class InvalidAppend(EventStoreError, ValueError):
    """The append request itself is malformed (unknown type, oversized payload, bad expected version,
    text PostgreSQL cannot store). Raised before anything is sent to the database, or when the driver
    or the database refuses an argument for its content: either way nothing is written, and
    retrying the same append is refused the same way."""


class WrongExpectedVersion(EventStoreError):
    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        super().__init__(f"stream {stream_id!r}: expected version {expected}, actual {actual}")
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class UniquenessViolation(EventStoreError):
    def __init__(self, claim: str) -> None:
        super().__init__(f"uniqueness claim {claim!r} is held by another stream")
        self.claim = claim


class DuplicateEventId(EventStoreError):
    """Event ids already stored, but not as an exact earlier copy of this append."""


class StreamState(enum.IntEnum):
    """Expected-version modes other than an exact version (EventStoreDB's four modes)."""

    ANY = -1
    NO_STREAM = -2
    STREAM_EXISTS = -3


ExpectedVersion = StreamState | int


class Claim(msgspec.Struct, frozen=True):
    """A uniqueness claim ``key`` held by ``stream_id`` (e.g. ``account-name:ci-bot``)."""

    key: str
    stream_id: str


class StreamAppend(msgspec.Struct, frozen=True):
    """Events for one stream. With no events it is a condition: the append fails unless the
    stream is at ``expected`` (which must then not be ANY)."""

    stream_id: str
    events: tuple[NewEvent, ...]
    expected: ExpectedVersion


class AppendedEvent(msgspec.Struct, frozen=True):
    event_id: uuid.UUID
    global_position: int
    stream_version: int
    tx_id: int

    @property
    def cursor(self) -> LogCursor:
        return LogCursor(self.tx_id, self.global_position)


class AppendResult(msgspec.Struct, frozen=True):
    """Where each appended event landed, in request order."""

    events: tuple[AppendedEvent, ...]

    @property
    def last_position(self) -> int:
        return max(e.global_position for e in self.events)

    @property
    def cursor(self) -> LogCursor:
        """The latest cursor of this append: a reader at or past it has seen all of it."""
        return max(e.cursor for e in self.events)


class EventStore(Protocol):
    """Append with optimistic concurrency and uniqueness claims, read a stream, find claims."""

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected: ExpectedVersion,
        *,
        claims: Sequence[Claim] = (),
        releases: Sequence[str] = (),
    ) -> AppendResult: ...

    async def append_many(
        self, appends: Sequence[StreamAppend], *, claims: Sequence[Claim] = (), releases: Sequence[str] = ()
    ) -> AppendResult: ...

    async def read_stream(
        self, stream_id: str, from_version: int = 1, *, until: datetime | None = None
    ) -> list[RecordedEvent]: ...

    async def stream_version(self, stream_id: str) -> int: ...

    async def read_all(self, after: LogCursor, limit: int = 1000) -> list[RecordedEvent]: ...

    async def claims_with_prefix(self, prefix: str) -> dict[str, str]: ...

    async def claim_owner(self, key: str) -> str | None: ...
