"""``tokenledger audit import``: an export's lines appended to a fresh database, so its read models
can be rebuilt from them (and compared with the source's).

The events keep their ids, streams, versions, metadata and order: they go through ``tl_append`` in
chunks, in the order of the file (so commit order is preserved across streams), each stream with the
exact expected version its first event implies. A filtered export, whose streams have gaps, is
therefore refused. What cannot come back:

* private fields were never exported. ``secret_hash`` becomes ``unexported:<event id>``, which no
  presented secret hashes to: ``token_secrets`` is rebuilt with the same tokens, versions, validity
  and retirement, but no imported token can be verified;
* ``recorded_at``, positions, transaction ids and hashes are those of the new log (the import is a
  new log with its own chain), and uniqueness claims are not re-taken: the copy is for reading and
  auditing, not for serving commands.
"""

import uuid
from collections.abc import Callable, Iterable
from typing import Any

import asyncpg
import msgspec

from events import Event, encode_event
from events.registry import event_from_data, event_type
from services.audit.export import ExportedEvent
from services.eventstore.errors import translate

CHUNK_SIZE = 1000
PLACEHOLDER_PREFIX = "unexported:"

_decoder = msgspec.json.Decoder(ExportedEvent)
_metadata_encoder = msgspec.json.Encoder()
_APPEND_SQL = "SELECT * FROM tl_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"


class ImportRefused(Exception):
    """The input cannot be imported as it is (bad line, gap in a stream, non-empty target)."""


def restored_event(line: ExportedEvent) -> Event:
    """The event a line describes, with each private field set to the unverifiable placeholder."""
    cls = event_type(line.type)
    data = dict(line.data)
    for name in cls.private_fields:
        data.setdefault(name, f"{PLACEHOLDER_PREFIX}{line.event_id}")
    return event_from_data(line.type, data)


class _Chunk:
    """The arguments of one ``tl_append`` call: events in file order, interleaving streams."""

    def __init__(self) -> None:
        self.streams: dict[str, int] = {}
        self.expected: list[int] = []
        self.next_version: list[int] = []
        self.event_stream: list[int] = []
        self.ids: list[uuid.UUID] = []
        self.types: list[str] = []
        self.data: list[str] = []
        self.metadata: list[str] = []

    def add(self, line: ExportedEvent, number: int) -> None:
        index = self.streams.get(line.stream_id)
        if index is None:
            self.streams[line.stream_id] = index = len(self.streams) + 1
            self.expected.append(line.stream_version - 1)
            self.next_version.append(line.stream_version)
        if line.stream_version != self.next_version[index - 1]:
            raise ImportRefused(
                f"line {number}: {line.stream_id} version {line.stream_version} does not follow"
                f" version {self.next_version[index - 1] - 1} (is the export filtered?)"
            )
        self.next_version[index - 1] += 1
        self.event_stream.append(index)
        self.ids.append(line.event_id)
        self.types.append(line.type)
        self.data.append(encode_event(restored_event(line)).decode())
        self.metadata.append(_metadata_encoder.encode(line.metadata).decode())

    def arguments(self) -> list[Any]:
        return [
            list(self.streams),
            self.expected,
            self.event_stream,
            self.ids,
            self.types,
            self.data,
            self.metadata,
            [],
            [],
            [],
        ]


async def import_lines(
    pool: asyncpg.Pool, lines: Iterable[bytes], advance: Callable[[int], None] | None = None
) -> int:
    """Appends the exported ``lines`` (blank lines skipped) to the empty log of ``pool``'s database;
    returns how many events were imported (``advance(n)`` after each chunk of n)."""
    if await pool.fetchval("SELECT EXISTS (SELECT 1 FROM events)"):
        raise ImportRefused("the target log is not empty: import into a fresh database")
    imported = 0
    chunk = _Chunk()
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            line = _decoder.decode(raw)
            chunk.add(line, number)
        except (msgspec.ValidationError, msgspec.DecodeError, LookupError) as error:
            raise ImportRefused(f"line {number}: {error}") from None
        if len(chunk.ids) >= CHUNK_SIZE:
            imported += await _appended(pool, chunk, advance)
            chunk = _Chunk()
    if chunk.ids:
        imported += await _appended(pool, chunk, advance)
    return imported


async def _appended(pool: asyncpg.Pool, chunk: "_Chunk", advance: Callable[[int], None] | None) -> int:
    count = await _append(pool, chunk)
    if advance is not None:
        advance(count)
    return count


async def _append(pool: asyncpg.Pool, chunk: _Chunk) -> int:
    try:
        rows = await pool.fetch(_APPEND_SQL, *chunk.arguments())
    except asyncpg.PostgresError as error:
        typed = translate(error)
        if typed is None:
            raise
        raise ImportRefused(str(typed)) from None
    return len(rows)
