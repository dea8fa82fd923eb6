"""The PostgreSQL errors of ``tl_append`` as the port's typed errors (``services.ports``)."""

import json

import asyncpg

from services.ports import (
    DuplicateEventId,
    EventStoreError,
    InvalidAppend,
    UniquenessViolation,
    WrongExpectedVersion,
)


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
