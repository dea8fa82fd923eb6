"""Shared helpers for the event store's integration tests: events to append, isolated stores, and
queries that look at the tables directly (so a test can prove what was, or was not, written)."""

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, NamedTuple

import asyncpg
import msgspec

from events import Metadata, NewEvent, encode_event
from events.accounts import AccountCreated, AccountUpdated
from services import database
from services.eventstore import PostgresEventStore

_metadata_encoder = msgspec.json.Encoder()


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def stream_name(prefix: str = "test") -> str:
    """A stream id no other test uses."""
    return f"{prefix}-{new_id()}"


def metadata(**fields: Any) -> Metadata:
    return Metadata(occurred_at=datetime.now(UTC), actor="system:tests", **fields)


def event(n: int = 0, *, event_id: uuid.UUID | None = None) -> NewEvent:
    """A small valid event; ``n`` makes its payload distinct."""
    body = AccountUpdated(account_id="acc", name=f"name-{n}", description=f"update {n}")
    if event_id is None:
        return NewEvent(event=body, metadata=metadata())
    return NewEvent(event=body, metadata=metadata(), event_id=event_id)


def events(count: int, start: int = 0) -> list[NewEvent]:
    return [event(n) for n in range(start, start + count)]


def created(account_id: str | None = None) -> NewEvent:
    account_id = account_id or new_id()
    return NewEvent(event=AccountCreated(account_id=account_id, name=account_id), metadata=metadata())


def ids(new_events: Sequence[NewEvent]) -> list[uuid.UUID]:
    return [e.event_id for e in new_events]


def tl_append_args(stream_id: str, new_events: Sequence[NewEvent], expected: int = -1) -> list[Any]:
    """Arguments of a raw ``SELECT * FROM tl_append(...)`` call appending to one stream."""
    return [
        [stream_id],
        [expected],
        [1] * len(new_events),
        ids(new_events),
        [e.event.tag() for e in new_events],
        [encode_event(e.event).decode() for e in new_events],
        [_metadata_encoder.encode(e.metadata).decode() for e in new_events],
        [],
        [],
        [],
    ]


TL_APPEND_SQL = "SELECT * FROM tl_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"


class TableCounts(NamedTuple):
    events: int
    streams: int
    claims: int


async def table_counts(pool: asyncpg.Pool) -> TableCounts:
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM events) AS events, (SELECT count(*) FROM streams) AS streams,"
        " (SELECT count(*) FROM uniqueness_claims) AS claims"
    )
    assert row is not None
    return TableCounts(row["events"], row["streams"], row["claims"])


async def stored_versions(pool: asyncpg.Pool, stream_id: str) -> list[int]:
    """The stream versions stored for a stream, in version order."""
    rows = await pool.fetch(
        "SELECT stream_version FROM events WHERE stream_id = $1 ORDER BY stream_version", stream_id
    )
    return [r["stream_version"] for r in rows]


async def stream_row(pool: asyncpg.Pool, stream_id: str) -> int | None:
    """The ``streams`` row's version, or None when the stream has no row."""
    version: int | None = await pool.fetchval("SELECT version FROM streams WHERE stream_id = $1", stream_id)
    return version


async def stored_ids(pool: asyncpg.Pool, event_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    rows = await pool.fetch("SELECT event_id FROM events WHERE event_id = ANY ($1::uuid[])", list(event_ids))
    return {r["event_id"] for r in rows}


async def assert_stream_is_consistent(pool: asyncpg.Pool, stream_id: str) -> int:
    """Versions run 1..n without gaps and the ``streams`` row says n; returns n."""
    versions = await stored_versions(pool, stream_id)
    assert versions == list(range(1, len(versions) + 1)), f"{stream_id}: versions {versions}"
    assert await stream_row(pool, stream_id) == (len(versions) or None)
    return len(versions)


def dsn_for(server_dsn: str, name: str) -> str:
    """The DSN of database ``name`` on the server of ``server_dsn``."""
    base, _, query = server_dsn.partition("?")
    base = base.rsplit("/", 1)[0] + "/" + name
    return f"{base}?{query}" if query else base


def database_name(dsn: str) -> str:
    return dsn.split("?")[0].rsplit("/", 1)[1]


async def create_database(server_dsn: str, *, template_dsn: str | None = None) -> str:
    """Creates a new database (a copy of ``template_dsn``'s, or an empty one); returns its DSN."""
    name = f"tl_{new_id()}"
    connection = await asyncpg.connect(server_dsn)
    try:
        clause = f' TEMPLATE "{database_name(template_dsn)}"' if template_dsn else ""
        await connection.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await connection.close()
    return dsn_for(server_dsn, name)


@asynccontextmanager
async def open_store(
    dsn: str, *, max_size: int = 10
) -> AsyncIterator[tuple[asyncpg.Pool, PostgresEventStore]]:
    """A pool and a store on ``dsn`` (typically an ``empty_database``), closed afterwards."""
    pool = await database.create_pool(dsn, min_size=1, max_size=max_size)
    try:
        yield pool, PostgresEventStore(pool)
    finally:
        await pool.close()
