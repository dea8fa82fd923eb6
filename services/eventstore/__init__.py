"""The PostgreSQL event store: schema, append with optimistic concurrency, stream reads, gap-safe tail."""

from services.eventstore.errors import (
    DuplicateEventId,
    EventStoreError,
    InvalidAppend,
    UniquenessViolation,
    WrongExpectedVersion,
)
from services.eventstore.store import AppendResult, Claim, EventStore, StreamAppend, StreamState

__all__ = [
    "AppendResult",
    "Claim",
    "DuplicateEventId",
    "EventStore",
    "EventStoreError",
    "InvalidAppend",
    "StreamAppend",
    "StreamState",
    "UniquenessViolation",
    "WrongExpectedVersion",
]
