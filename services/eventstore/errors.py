"""Typed errors of the event store; each maps one SQLSTATE raised by ``tl_append`` or a caller mistake."""

import json

import asyncpg


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


def translate(error: asyncpg.PostgresError) -> EventStoreError | None:
    """The typed error for a database error raised by ``tl_append``, or None for any other error."""
    match error.sqlstate:
        case "TLV01":
            detail = json.loads(error.detail)
            return WrongExpectedVersion(detail["stream_id"], detail["expected"], detail["actual"])
        case "TLU01":
            return UniquenessViolation(json.loads(error.detail)["claim"])
        case "TLD01":
            return DuplicateEventId(str(error))
        case str(code) if code.startswith("22"):
            # A data exception (class 22: text that is not valid in the database's encoding, U+0000
            # in jsonb...): the content itself is refused, whatever the moment.
            return InvalidAppend(f"the database refused the append's content: {error}")
        case "23505" if getattr(error, "constraint_name", None) == "events_event_id_key":
            # A concurrent transaction stored one of these ids (in another stream) after tl_append
            # looked for them; the retry check never saw it, the unique index did.
            return DuplicateEventId(f"event ids already stored elsewhere in the log ({error.detail})")
    return None
