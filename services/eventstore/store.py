"""Appending to and reading from the event log (asyncpg).

``append`` validates the request in Python (so bad input never reaches the database), then makes
exactly one call to the ``tl_append`` SQL function, which locks the streams, checks expected
versions, takes uniqueness claims, inserts the events and notifies tailers in one transaction.

Text PostgreSQL cannot store is such bad input: a lone surrogate (what undecodable bytes become),
anywhere in an event, its metadata, a stream id, a claim or a release, and U+0000 (refused by text
and jsonb alike). Both are ``InvalidAppend``, found in Python; should the driver or the database
still refuse an argument for its content (an encoding error, a data exception), that is
``InvalidAppend`` too: nothing was written, and the same append would be refused again.
"""

import re
import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg
import msgspec

from events import Event, LogCursor, Metadata, NewEvent, RecordedEvent, encode_event
from events.registry import UnknownEventType
from services.eventstore.errors import translate
from services.eventstore.rows import EVENT_COLUMNS, recorded_event
from services.ports import (
    AppendedEvent,
    AppendResult,
    Claim,
    ExpectedVersion,
    InvalidAppend,
    StreamAppend,
    StreamState,
)

MAX_EVENT_BYTES = 64 * 1024
MAX_STREAM_ID_LENGTH = 200
MAX_EVENTS_PER_APPEND = 10_000

_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
"""U+0000 in encoded JSON: ``\u0000`` after an even number of backslashes (else it is text)."""

_metadata_encoder = msgspec.json.Encoder()


def _expected_code(expected: object) -> int:
    if isinstance(expected, StreamState):
        return int(expected)
    if isinstance(expected, bool) or not isinstance(expected, int):
        raise InvalidAppend(
            f"expected version must be a StreamState or an int >= 0, not {type(expected).__name__}"
        )
    if expected < 0:
        raise InvalidAppend(f"expected version must be >= 0, got {expected}")
    return expected


def _check_stream_id(stream_id: object) -> str:
    if not isinstance(stream_id, str) or not stream_id or len(stream_id) > MAX_STREAM_ID_LENGTH:
        raise InvalidAppend(f"stream id must be a non-empty string of at most {MAX_STREAM_ID_LENGTH}")
    return _check_text(stream_id, "stream id")


def _check_text(text: str, what: str) -> str:
    """``text`` when PostgreSQL can store it: valid UTF-8 (no lone surrogate) without U+0000."""
    if "\x00" in text:
        raise InvalidAppend(f"{what} {text!r} contains U+0000")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidAppend(f"{what} {text!r} is not valid Unicode (a lone surrogate)") from None
    return text


def _check_json(encoded: bytes, what: str) -> str:
    """The encoded JSON as text, when jsonb can store it (no U+0000)."""
    if b"\\u0000" in encoded and _NUL_ESCAPE.search(encoded):
        raise InvalidAppend(f"{what} contains U+0000")
    return encoded.decode()


def _encode(new_event: NewEvent) -> tuple[str, str, str]:
    if not isinstance(new_event, NewEvent):
        raise InvalidAppend(f"expected a NewEvent, got {type(new_event).__name__}")
    # msgspec does not type-check a Struct's constructor: check what would otherwise fail later
    # (AttributeError), be stored undecodable (metadata), or break the result mapping (a str id).
    if not isinstance(new_event.event, Event):
        raise InvalidAppend(f"the event is not an Event: {type(new_event.event).__name__}")
    if not isinstance(new_event.metadata, Metadata):
        raise InvalidAppend(f"the metadata is not a Metadata: {type(new_event.metadata).__name__}")
    if not isinstance(new_event.event_id, uuid.UUID):
        raise InvalidAppend(f"event id must be a uuid.UUID, not {type(new_event.event_id).__name__}")
    tag = new_event.event.tag()
    try:
        data = encode_event(new_event.event)
        metadata = _metadata_encoder.encode(new_event.metadata)
    except UnicodeEncodeError:
        raise InvalidAppend(f"event {tag} holds text that is not valid Unicode (a lone surrogate)") from None
    except (UnknownEventType, TypeError) as error:
        raise InvalidAppend(str(error)) from None
    if len(data) > MAX_EVENT_BYTES:
        raise InvalidAppend(f"event {tag} is {len(data)} bytes; the limit is {MAX_EVENT_BYTES}")
    if len(metadata) > MAX_EVENT_BYTES:
        raise InvalidAppend(f"metadata is {len(metadata)} bytes; the limit is {MAX_EVENT_BYTES}")
    return tag, _check_json(data, f"event {tag}"), _check_json(metadata, f"metadata of event {tag}")


class PostgresEventStore:
    """The log. Holds a pool; each method uses one connection for one statement."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected: ExpectedVersion,
        *,
        claims: Sequence[Claim] = (),
        releases: Sequence[str] = (),
    ) -> AppendResult:
        return await self.append_many([StreamAppend(stream_id, events, expected)], claims, releases)

    async def append_many(
        self,
        appends: Sequence[StreamAppend],
        claims: Sequence[Claim] = (),
        releases: Sequence[str] = (),
    ) -> AppendResult:
        """Appends to several streams atomically (e.g. an account's deletion and its tokens'
        revocations). Each stream may appear once."""
        streams: list[str] = []
        expected: list[int] = []
        stream_index: list[int] = []
        ids: list[uuid.UUID] = []
        types: list[str] = []
        data: list[str] = []
        metadata: list[str] = []
        for number, request in enumerate(appends, start=1):
            stream = _check_stream_id(request.stream_id)
            if stream in streams:
                raise InvalidAppend(f"stream {stream!r} appears twice in one append")
            if not request.events and request.expected == StreamState.ANY:
                raise InvalidAppend(f"no events for {stream!r} and no expected version to check")
            streams.append(stream)
            expected.append(_expected_code(request.expected))
            for new_event in request.events:
                tag, body, meta = _encode(new_event)
                stream_index.append(number)
                ids.append(new_event.event_id)
                types.append(tag)
                data.append(body)
                metadata.append(meta)
        if not ids:
            raise InvalidAppend("nothing to append")
        if len(ids) > MAX_EVENTS_PER_APPEND:
            raise InvalidAppend(f"{len(ids)} events in one append; the limit is {MAX_EVENTS_PER_APPEND}")
        if len(set(ids)) != len(ids):
            raise InvalidAppend("the same event id appears twice in one append")
        for claim in claims:
            if claim.stream_id not in streams:
                raise InvalidAppend(f"claim {claim.key!r} names a stream this append does not write")
            _check_text(claim.key, "claim")
        for release in releases:
            _check_text(release, "release")
        try:
            rows = await self._pool.fetch(
                "SELECT * FROM tl_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                streams,
                expected,
                stream_index,
                ids,
                types,
                data,
                metadata,
                [c.key for c in claims],
                [c.stream_id for c in claims],
                list(releases),
            )
        except asyncpg.PostgresError as error:
            typed = translate(error)
            if typed is None:
                raise
            raise typed from None
        except ValueError as error:
            # The driver could not encode an argument (UnicodeEncodeError, its DataError): nothing
            # was sent, and the same append would fail the same way.
            raise InvalidAppend(f"the append cannot be stored: {error}") from None
        order = {event_id: n for n, event_id in enumerate(ids)}
        appended = sorted(
            (
                AppendedEvent(r["event_id"], r["global_position"], r["stream_version"], r["tx_id"])
                for r in rows
            ),
            key=lambda e: order[e.event_id],
        )
        return AppendResult(appended)

    async def read_stream(
        self, stream_id: str, from_version: int = 1, *, until: datetime | None = None
    ) -> list[RecordedEvent]:
        """A stream's events from ``from_version`` on, in version order; with ``until``, only those
        recorded at or before that instant."""
        rows = await self._pool.fetch(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND stream_version >= $2"  # noqa: S608
            " AND ($3::timestamptz IS NULL OR recorded_at <= $3) ORDER BY stream_version",
            stream_id,
            from_version,
            until,
        )
        return [recorded_event(r) for r in rows]

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version; 0 when it does not exist."""
        version: int | None = await self._pool.fetchval(
            "SELECT version FROM streams WHERE stream_id = $1", stream_id
        )
        return version or 0

    async def read_all(self, after: LogCursor, limit: int = 1000) -> list[RecordedEvent]:
        """Committed events past ``after`` in commit-safe order; never returns an event while an
        older transaction that could still write a preceding one is running."""
        rows = await self._pool.fetch(SAFE_READ_SQL, after.tx_id, after.position, limit)
        return [recorded_event(r) for r in rows]

    async def claims_with_prefix(self, prefix: str) -> dict[str, str]:
        """Claims whose key starts with ``prefix``, mapped to the stream holding each."""
        rows = await self._pool.fetch(
            "SELECT claim, stream_id FROM uniqueness_claims WHERE claim LIKE $1 || '%'",
            prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_"),
        )
        return {row["claim"]: row["stream_id"] for row in rows}

    async def claim_owner(self, key: str) -> str | None:
        owner: str | None = await self._pool.fetchval(
            "SELECT stream_id FROM uniqueness_claims WHERE claim = $1", key
        )
        return owner


SAFE_READ_SQL = (
    f"SELECT {EVENT_COLUMNS} FROM events"  # noqa: S608 (a constant column list)
    " WHERE (tx_id, global_position) > ($1::bigint::text::xid8, $2::bigint)"
    " AND tx_id < pg_snapshot_xmin(pg_current_snapshot())"
    " ORDER BY events.tx_id, events.global_position LIMIT $3"  # the column, not the bigint alias
)
