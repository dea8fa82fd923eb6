"""``tokenledger audit verify``: recomputes every stream's hash chain and every checkpoint, in one
read-only snapshot, and reports what was altered, deleted or inserted.

Streams are checked link by link: event v must be version (v-1)+1 of a stream that ``streams``
records, and its stored hash must equal the hash of its content chained from the stored hash of
event v-1. So a change made with SQL is reported at the event it touched: a gap in versions is a
deletion, an event past the stream's recorded version (or in a stream with no record) an insertion,
anything else an alteration. A stream shorter than its record lost its tail.

Checkpoints are recomputed from the events in (tx_id, position) order: a checkpoint that no longer
matches shows that its range changed even when every stream chain was rewritten consistently; an
event in it recorded after the checkpoint was sealed is named as inserted.

Findings come in log order (by position), those about events before those about checkpoints: an
event finding pins the change down, a checkpoint finding only says that its range changed (it is
first only when no stream chain shows anything, i.e. after a consistent rewrite).
"""

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from services.audit.chain import CheckpointHasher, event_hash

ALTERED, DELETED, INSERTED, CHECKPOINT = "altered", "deleted", "inserted", "checkpoint"
_FETCH = 5000

_STREAM_ORDER_SQL = """
SELECT e.stream_id, e.stream_version, e.event_id, e.type, e.global_position,
       e.tx_id::text::bigint AS tx_id, e.recorded_at, e.data::text AS data,
       e.metadata::text AS metadata, e.hash, s.version AS recorded_version, s.head_hash
FROM events e LEFT JOIN streams s ON s.stream_id = e.stream_id
ORDER BY e.stream_id, e.stream_version
"""
_EMPTY_STREAMS_SQL = """
SELECT s.stream_id, s.version FROM streams s
WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.stream_id = s.stream_id)
"""
_COMMIT_ORDER_SQL = """
SELECT e.tx_id::text::bigint AS tx_id, e.global_position, e.hash, e.recorded_at,
       e.stream_id, e.stream_version
FROM events e ORDER BY e.tx_id, e.global_position
"""
_CHECKPOINTS_SQL = """
SELECT checkpoint, last_tx_id::text::bigint AS last_tx_id, last_position, event_count, hash, sealed_at
FROM log_checkpoints ORDER BY checkpoint
"""


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """One piece of tampering. ``position`` is the event's; for a deletion, the position of the
    next event left in the stream (or of its last one, when the tail went)."""

    kind: str
    stream_id: str | None
    stream_version: int | None
    position: int | None
    detail: str

    def describe(self) -> str:
        where = []
        if self.stream_id is not None:
            where.append(f"stream {self.stream_id!r} version {self.stream_version}")
        if self.position is not None:
            where.append(f"position {self.position}")
        return f"{self.kind}: {', '.join(where)}: {self.detail}"


class VerifyReport(msgspec.Struct, kw_only=True):
    events: int = 0
    streams: int = 0
    checkpoints: int = 0
    unsealed_events: int = 0
    head_checkpoint_hash: str | None = None
    findings: list[Finding] = []

    @property
    def intact(self) -> bool:
        return not self.findings

    @property
    def first(self) -> Finding | None:
        return self.findings[0] if self.findings else None

    def summary(self) -> str:
        head = self.head_checkpoint_hash or "none"
        return (
            f"{self.events} events in {self.streams} streams; {self.checkpoints} checkpoints"
            f" (head {head}); {self.unsealed_events} events not sealed yet"
        )


async def verify(pool: asyncpg.Pool, advance: Callable[[int], None] | None = None) -> VerifyReport:
    """Both passes over the log (stream order, then commit order); ``advance(1)`` per row read."""
    report = VerifyReport()
    async with (
        pool.acquire() as connection,
        connection.transaction(isolation="repeatable_read", readonly=True),
    ):
        await _check_streams(connection, report, advance)
        await _check_checkpoints(connection, report, advance)
    report.findings.sort(key=lambda f: (f.kind == CHECKPOINT, f.position is None, f.position or 0))
    return report


async def _rows(connection: Any, query: str) -> AsyncIterator[asyncpg.Record]:
    async for row in connection.cursor(query, prefetch=_FETCH):
        yield row


class _StreamWalk:
    """The state of one stream while its events go by in version order."""

    def __init__(self, row: asyncpg.Record) -> None:
        self.stream_id: str = row["stream_id"]
        self.recorded_version: int | None = row["recorded_version"]
        self.head_hash: bytes | None = row["head_hash"]
        self.version = 0
        self.hash: bytes | None = None
        self.position = 0

    def step(self, row: asyncpg.Record) -> Finding | None:
        version, position = row["stream_version"], row["global_position"]
        finding = self._judge(row, version, position)
        self.version, self.hash, self.position = version, row["hash"], position
        return finding

    def _judge(self, row: asyncpg.Record, version: int, position: int) -> Finding | None:
        if self.recorded_version is None or version > self.recorded_version:
            record = "no record" if self.recorded_version is None else f"version {self.recorded_version}"
            return self._finding(INSERTED, version, position, f"the stream's record says {record}")
        if version != self.version + 1:
            missing = f"{self.version + 1}..{version - 1}" if version - 1 > self.version + 1 else ""
            detail = f"versions {missing or self.version + 1} missing before this event"
            return self._finding(DELETED, self.version + 1, position, detail)
        expected = event_hash(
            self.hash,
            stream_id=self.stream_id,
            stream_version=version,
            event_id=row["event_id"],
            type=row["type"],
            global_position=position,
            tx_id=row["tx_id"],
            recorded_at=row["recorded_at"],
            data=row["data"],
            metadata=row["metadata"],
        )
        if row["hash"] is None:
            return self._finding(ALTERED, version, position, "the event has no hash")
        if row["hash"] != expected:
            return self._finding(
                ALTERED, version, position, "its hash does not match its content and the previous hash"
            )
        return None

    def finish(self) -> Finding | None:
        recorded = self.recorded_version
        if recorded is not None and self.version < recorded:
            detail = f"versions {self.version + 1}..{recorded} are missing at the end of the stream"
            return self._finding(DELETED, self.version + 1, self.position, detail)
        if recorded == self.version and self.head_hash != self.hash:
            detail = "the stream's recorded head hash differs from its last event's"
            return self._finding(ALTERED, self.version, self.position, detail)
        return None

    def _finding(self, kind: str, version: int, position: int, detail: str) -> Finding:
        return Finding(
            kind=kind, stream_id=self.stream_id, stream_version=version, position=position, detail=detail
        )


async def _check_streams(
    connection: Any, report: VerifyReport, advance: Callable[[int], None] | None
) -> None:
    walk: _StreamWalk | None = None
    found: list[Finding | None] = []
    async for row in _rows(connection, _STREAM_ORDER_SQL):
        report.events += 1
        if advance is not None:
            advance(1)
        if walk is None or row["stream_id"] != walk.stream_id:
            if walk is not None:
                found.append(walk.finish())
            walk = _StreamWalk(row)
            report.streams += 1
        found.append(walk.step(row))
    if walk is not None:
        found.append(walk.finish())
    for row in await connection.fetch(_EMPTY_STREAMS_SQL):
        found.append(
            Finding(
                kind=DELETED,
                stream_id=row["stream_id"],
                stream_version=1,
                position=None,
                detail=f"all {row['version']} events of the stream are missing",
            )
        )
    report.findings.extend(f for f in found if f is not None)


class _CheckpointRange:
    """The events a stored checkpoint covers, as they are now."""

    def __init__(self, stored: asyncpg.Record, previous_hash: bytes | None) -> None:
        self.stored = stored
        self.hasher = CheckpointHasher(previous_hash, stored["checkpoint"])
        self.first_position: int | None = None
        self.inserted_after_seal: asyncpg.Record | None = None

    def covers(self, row: asyncpg.Record) -> bool:
        return (row["tx_id"], row["global_position"]) <= (
            self.stored["last_tx_id"],
            self.stored["last_position"],
        )

    def add(self, row: asyncpg.Record) -> None:
        self.hasher.add(row["global_position"], row["hash"])
        if self.first_position is None:
            self.first_position = row["global_position"]
        sealed_at: datetime = self.stored["sealed_at"]
        if self.inserted_after_seal is None and row["recorded_at"] > sealed_at:
            self.inserted_after_seal = row

    def findings(self) -> list[Finding]:
        number, sealed_count = self.stored["checkpoint"], self.stored["event_count"]
        found: list[Finding] = []
        late = self.inserted_after_seal
        if late is not None:
            found.append(
                Finding(
                    kind=INSERTED,
                    stream_id=late["stream_id"],
                    stream_version=late["stream_version"],
                    position=late["global_position"],
                    detail=f"recorded after checkpoint {number}, which covers it, was sealed",
                )
            )
        if self.hasher.count != sealed_count or self.hasher.digest() != self.stored["hash"]:
            detail = (
                f"checkpoint {number} (up to position {self.stored['last_position']}) no longer matches:"
                f" it covered {sealed_count} events, {self.hasher.count} are there now"
            )
            found.append(
                Finding(
                    kind=CHECKPOINT,
                    stream_id=None,
                    stream_version=None,
                    position=self.first_position,
                    detail=detail,
                )
            )
        return found


async def _check_checkpoints(
    connection: Any, report: VerifyReport, advance: Callable[[int], None] | None
) -> None:
    stored = await connection.fetch(_CHECKPOINTS_SQL)
    report.checkpoints = len(stored)
    if stored:
        report.head_checkpoint_hash = stored[-1]["hash"].hex()
    for expected_number, checkpoint in enumerate(stored, start=1):
        if checkpoint["checkpoint"] != expected_number:
            report.findings.append(
                Finding(
                    kind=CHECKPOINT,
                    stream_id=None,
                    stream_version=None,
                    position=None,
                    detail=f"checkpoint {expected_number} is missing",
                )
            )
            return
    index = 0
    current = _open_range(stored, index)
    async for row in _rows(connection, _COMMIT_ORDER_SQL):
        if advance is not None:
            advance(1)
        while current is not None and not current.covers(row):
            report.findings.extend(current.findings())
            index += 1
            current = _open_range(stored, index)
        if current is None:
            report.unsealed_events += 1
        else:
            current.add(row)
    while current is not None:
        report.findings.extend(current.findings())
        index += 1
        current = _open_range(stored, index)


def _open_range(stored: list[asyncpg.Record], index: int) -> _CheckpointRange | None:
    if index >= len(stored):
        return None
    return _CheckpointRange(stored[index], stored[index - 1]["hash"] if index else None)
