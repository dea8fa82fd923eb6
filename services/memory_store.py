"""An event store in memory: the second adapter of ``services.ports``, for unit tests of pure logic
(command handlers: given events, when a command, then events or an error) that must run in
milliseconds without PostgreSQL. It is never a production store: nothing persists, one process
sees it, and no setting selects it (the composition root builds ``PostgresEventStore`` only).

It keeps the contract the PostgreSQL store keeps (``tests/contract`` runs one suite against both):
the same request checks (``services.append_request``), the four expected-version modes, idempotent
retries recognised by their event ids (stored in the requested streams, in order, right after the
expected version, with the same types), ``DuplicateEventId`` for ids reused anywhere else,
uniqueness claims released and taken in the append that needs them, condition-only streams,
all-or-nothing appends across streams, and ``read_all`` in commit order. Each append is one
transaction: it runs without yielding to the event loop, so concurrent appends are serialised.
Events are stored encoded, as the log stores them, and decoded on every read.
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from events import LogCursor, Metadata, NewEvent, RecordedEvent, decode_event
from services.append_request import AppendRequest, append_request
from services.ports import (
    AppendedEvent,
    AppendResult,
    Claim,
    DuplicateEventId,
    ExpectedVersion,
    StreamAppend,
    StreamState,
    UniquenessViolation,
    WrongExpectedVersion,
)

_metadata_decoder = msgspec.json.Decoder(Metadata)


class _Stored(msgspec.Struct, frozen=True, kw_only=True):
    """One event as the log holds it: its place and its encoded columns."""

    global_position: int
    tx_id: int
    stream_id: str
    stream_version: int
    event_id: uuid.UUID
    type: str
    data: str
    metadata: str
    recorded_at: datetime

    def appended(self) -> AppendedEvent:
        return AppendedEvent(self.event_id, self.global_position, self.stream_version, self.tx_id)

    def recorded(self) -> RecordedEvent:
        return RecordedEvent(
            global_position=self.global_position,
            tx_id=self.tx_id,
            stream_id=self.stream_id,
            stream_version=self.stream_version,
            event_id=self.event_id,
            event=decode_event(self.type, self.data),
            metadata=_metadata_decoder.decode(self.metadata),
            recorded_at=self.recorded_at,
        )


class MemoryEventStore:
    """The log in a list; streams, event ids and claims indexed beside it. Unit tests only."""

    def __init__(self) -> None:
        self._log: list[_Stored] = []
        self._streams: dict[str, list[_Stored]] = {}
        self._by_id: dict[uuid.UUID, _Stored] = {}
        self._claims: dict[str, str] = {}
        self._last_tx = 0

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected: ExpectedVersion,
        *,
        claims: Sequence[Claim] = (),
        releases: Sequence[str] = (),
    ) -> AppendResult:
        return await self.append_many([StreamAppend(stream_id, tuple(events), expected)], claims, releases)

    async def append_many(
        self,
        appends: Sequence[StreamAppend],
        claims: Sequence[Claim] = (),
        releases: Sequence[str] = (),
    ) -> AppendResult:
        """Appends to several streams atomically. Each stream may appear once."""
        request = append_request(appends, claims, releases)
        if any(event_id in self._by_id for event_id in request.event_ids):
            return AppendResult(tuple(stored.appended() for stored in self._stored_retry(request)))
        current = [self._version(stream) for stream in request.streams]
        for stream, expected, actual in zip(request.streams, request.expected, current, strict=True):
            if not _expected_holds(expected, actual):
                raise WrongExpectedVersion(stream, expected, actual)
        released = set(request.releases)
        claims_after = {key: holder for key, holder in self._claims.items() if key not in released}
        for claim in request.claims:
            if claims_after.setdefault(claim.key, claim.stream_id) != claim.stream_id:
                raise UniquenessViolation(claim.key)
        # Nothing can fail past this point: the append commits as a whole.
        self._claims = claims_after
        self._last_tx += 1
        now = datetime.now(UTC)
        written: list[_Stored] = []
        for n, index in enumerate(request.event_stream):
            stream = request.streams[index - 1]
            stored = _Stored(
                global_position=len(self._log) + 1,
                tx_id=self._last_tx,
                stream_id=stream,
                stream_version=self._version(stream) + 1,
                event_id=request.event_ids[n],
                type=request.types[n],
                data=request.data[n],
                metadata=request.metadata[n],
                recorded_at=now,
            )
            self._log.append(stored)
            self._streams.setdefault(stream, []).append(stored)
            self._by_id[stored.event_id] = stored
            written.append(stored)
        return AppendResult(tuple(stored.appended() for stored in written))

    def _stored_retry(self, request: AppendRequest) -> list[_Stored]:
        """The stored events of an append made before, when this request is exactly that append
        again (as ``tl_stored_retry``); otherwise ``DuplicateEventId``."""
        first_version: dict[int, int] = {}
        nth: dict[int, int] = {}
        found: list[_Stored] = []
        for n, index in enumerate(request.event_stream):
            stored = self._by_id.get(request.event_ids[n])
            if stored is None:
                raise DuplicateEventId("event ids already stored elsewhere in the log")
            first = first_version.setdefault(index, stored.stream_version)
            nth[index] = nth.get(index, 0) + 1
            expected = request.expected[index - 1]
            if (
                stored.stream_id != request.streams[index - 1]
                or stored.type != request.types[n]
                or stored.stream_version != first + nth[index] - 1
                or (expected >= 0 and first != expected + 1)
                or (expected == StreamState.NO_STREAM and first != 1)
            ):
                raise DuplicateEventId("event ids already stored elsewhere in the log")
            found.append(stored)
        return found

    def _version(self, stream_id: str) -> int:
        return len(self._streams.get(stream_id, ()))

    async def read_stream(
        self, stream_id: str, from_version: int = 1, *, until: datetime | None = None
    ) -> list[RecordedEvent]:
        """A stream's events from ``from_version`` on, in version order; with ``until``, only those
        recorded at or before that instant."""
        return [
            stored.recorded()
            for stored in self._streams.get(stream_id, ())
            if stored.stream_version >= from_version and (until is None or stored.recorded_at <= until)
        ]

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version; 0 when it does not exist."""
        return self._version(stream_id)

    async def read_all(self, after: LogCursor, limit: int = 1000) -> list[RecordedEvent]:
        """Events past ``after`` in commit order (every append has committed when it returns)."""
        past = (s for s in self._log if LogCursor(s.tx_id, s.global_position) > after)
        return [stored.recorded() for stored, _ in zip(past, range(limit), strict=False)]

    async def claims_with_prefix(self, prefix: str) -> dict[str, str]:
        """Claims whose key starts with ``prefix``, mapped to the stream holding each."""
        return {key: stream for key, stream in self._claims.items() if key.startswith(prefix)}

    async def claim_owner(self, key: str) -> str | None:
        return self._claims.get(key)


def _expected_holds(expected: int, actual: int) -> bool:
    match expected:
        case StreamState.ANY:
            return True
        case StreamState.NO_STREAM:
            return actual == 0
        case StreamState.STREAM_EXISTS:
            return actual > 0
    return actual == expected
