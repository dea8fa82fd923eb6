"""What each ``tokenledger audit`` action does, against the configured database (migrated first).

Reports go to stderr and data (export lines, replay lines) to stdout, so the data can be piped.
"""

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import BinaryIO

import asyncpg
import msgspec

from services import database
from services.audit.checkpoints import seal
from services.audit.export import EVERYTHING, ExportFilter, export_pages
from services.audit.importer import ImportRefused, import_lines
from services.audit.replay import replay, replayed_types
from services.audit.usage_export import UsageExportFilter, export_usage_pages
from services.audit.verify import verify
from services.config import Settings
from services.progress import Advance, reporting

MAX_FINDINGS_SHOWN = 20
NEXT_AFTER_IMPORT = "tokenledger projections rebuild --all"
_encoder = msgspec.json.Encoder()


@asynccontextmanager
async def _pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    dsn = await database.open_database(settings.database_url, settings.data_dir)
    pool = await database.create_pool(dsn, min_size=1, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


async def run_audit(settings: Settings, action: Callable[[asyncpg.Pool], Awaitable[int]]) -> int:
    """Runs one action on a small pool of the configured database (migrated first)."""
    async with _pool(settings) as pool:
        return await action(pool)


async def _events(pool: asyncpg.Pool) -> int:
    """How many events the log holds (the total of a progress bar)."""
    count: int = await pool.fetchval("SELECT count(*) FROM events")
    return count


async def verify_log(pool: asyncpg.Pool) -> int:
    with reporting("verifying", 2 * await _events(pool), "rows") as advance:  # two passes
        report = await verify(pool, advance)
    print(report.summary(), file=sys.stderr)
    if report.intact:
        print("intact: no event was altered, deleted or inserted", file=sys.stderr)
        return 0
    first = report.first
    assert first is not None
    print(f"TAMPERED: first {first.describe()}", file=sys.stderr)
    for finding in report.findings[1:MAX_FINDINGS_SHOWN]:
        print(f"  also {finding.describe()}", file=sys.stderr)
    if len(report.findings) > MAX_FINDINGS_SHOWN:
        print(f"  ... {len(report.findings) - MAX_FINDINGS_SHOWN} more", file=sys.stderr)
    return 1


async def seal_log(pool: asyncpg.Pool, events_per_checkpoint: int) -> int:
    sealed = await seal(pool, events_per_checkpoint=events_per_checkpoint)
    if not sealed:
        print("nothing to seal: every committed event is covered", file=sys.stderr)
    for checkpoint in sealed:
        print(
            f"sealed checkpoint {checkpoint.checkpoint}: {checkpoint.event_count} events"
            f" up to position {checkpoint.last_position}",
            file=sys.stderr,
        )
    return 0


async def export_log(pool: asyncpg.Pool, selection: ExportFilter) -> int:
    total = await _events(pool) if selection == EVERYTHING else None  # a filter's share is unknown
    with reporting("exporting", total) as advance:
        return await _write(export_pages(pool, selection), sys.stdout.buffer, advance)


async def export_usage_log(pool: asyncpg.Pool, selection: UsageExportFilter) -> int:
    return await _write(export_usage_pages(pool, selection), sys.stdout.buffer)


async def _write(chunks: AsyncIterator[bytes], out: BinaryIO, advance: Advance | None = None) -> int:
    async for chunk in chunks:
        out.write(chunk)
        if advance is not None:
            advance(chunk.count(b"\n"))
    out.flush()
    return 0


def _lines_in(source: BinaryIO) -> int | None:
    """The lines of a file (read once, then rewound); None for a pipe."""
    if not source.seekable():
        return None
    lines = sum(block.count(b"\n") for block in iter(lambda: source.read(1 << 20), b""))
    source.seek(0)
    return lines


async def import_log(pool: asyncpg.Pool, source: BinaryIO) -> int:
    try:
        with reporting("importing", _lines_in(source)) as advance:
            count = await import_lines(pool, source, advance)
    except ImportRefused as refused:
        print(f"import refused: {refused}", file=sys.stderr)
        return 1
    print(f"imported {count} events; build the read models next: {NEXT_AFTER_IMPORT}", file=sys.stderr)
    return 0


async def replay_rights(pool: asyncpg.Pool, at: datetime) -> int:
    out = sys.stdout.buffer
    total: int = await pool.fetchval(
        "SELECT count(*) FROM events WHERE type = ANY ($1::text[])", replayed_types()
    )
    with reporting("replaying", total) as advance:
        rights_then = await replay(pool, at, advance)
    for rights in rights_then:
        out.write(_encoder.encode(rights) + b"\n")
    out.flush()
    return 0
