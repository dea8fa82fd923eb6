"""An append request as every event store adapter (``services.ports``) accepts it: the checks that
make a request ``InvalidAppend`` before anything is stored, and the request encoded as the log
stores it (one column per event field, in request order). The PostgreSQL store sends these columns
to ``tl_append``; the in-memory store keeps them; both refuse the same requests the same way.

Text PostgreSQL cannot store is refused here for every adapter: a lone surrogate (what undecodable
bytes become), anywhere in an event, its metadata, a stream id, a claim or a release, and U+0000
(refused by text and jsonb alike).
"""

import re
import uuid
from collections.abc import Sequence

import msgspec

from events import Event, Metadata, NewEvent, encode_event
from events.registry import UnknownEventType
from services.ports import Claim, InvalidAppend, StreamAppend, StreamState

MAX_EVENT_BYTES = 64 * 1024
MAX_STREAM_ID_LENGTH = 200
MAX_EVENTS_PER_APPEND = 10_000

_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
"""U+0000 in encoded JSON: ``\u0000`` after an even number of backslashes (else it is text)."""

_metadata_encoder = msgspec.json.Encoder()


class AppendRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A valid append, as columns. ``streams[i]`` is expected at ``expected[i]`` (a ``StreamState``
    code or a version); event ``j`` goes to ``streams[event_stream[j] - 1]`` (1-based, as in SQL)."""

    streams: tuple[str, ...]
    expected: tuple[int, ...]
    event_stream: tuple[int, ...]
    event_ids: tuple[uuid.UUID, ...]
    types: tuple[str, ...]
    data: tuple[str, ...]
    metadata: tuple[str, ...]
    claims: tuple[Claim, ...]
    releases: tuple[str, ...]


def append_request(
    appends: Sequence[StreamAppend], claims: Sequence[Claim] = (), releases: Sequence[str] = ()
) -> AppendRequest:
    """The request checked and encoded; ``InvalidAppend`` naming the first problem found."""
    streams: list[str] = []
    expected: list[int] = []
    event_stream: list[int] = []
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
            event_stream.append(number)
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
    return AppendRequest(
        streams=tuple(streams),
        expected=tuple(expected),
        event_stream=tuple(event_stream),
        event_ids=tuple(ids),
        types=tuple(types),
        data=tuple(data),
        metadata=tuple(metadata),
        claims=tuple(claims),
        releases=tuple(releases),
    )


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
