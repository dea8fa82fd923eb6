"""Support for the projection integration tests (no tests here): a running projection runtime on a
fresh database, event builders, and queries that read tables whole so two of them can be compared
byte for byte."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from bench.generated_log import Generated
from events import Event, Metadata, NewEvent
from projections.barrier import FALLBACK_SECONDS
from projections.base import Projection, Statement
from projections.catalogue import ALL_PROJECTIONS
from projections.runtime import Projections
from projections.source import CombinedLogSource
from services import database
from services.eventstore import PostgresEventStore
from services.eventstore.commit_notices import ProgressNotices
from services.eventstore.notifications import LogNotifications
from services.eventstore.tail import LogTail
from services.ports import AppendResult, StreamAppend, StreamState

PRIMARY_KEYS = {
    "accounts": "account_id",
    "tokens": "token_id",
    "token_secrets": "secret_hash",
    "role_assignments": "assignment_id",
    "federated_credentials": "credential_id",
    "teams": "team_id",
    "team_members": "team_id, account_id",
    "token_deadlines": "token_id, kind, ref",
    "rotation_periods": "account_id",
    "account_deadlines": "account_id",
}


def new_id() -> str:
    return str(uuid.uuid4())


def new_event(event: Event, at: datetime | None = None) -> NewEvent:
    return NewEvent(event=event, metadata=Metadata(occurred_at=at or datetime.now(UTC), actor="system:tests"))


@dataclass
class World:
    dsn: str
    pool: asyncpg.Pool
    store: PostgresEventStore
    notifications: LogNotifications
    projections: Projections

    async def append(self, stream_id: str, *events: Event) -> AppendResult:
        return await self.store.append(stream_id, [new_event(e) for e in events], StreamState.ANY)

    async def current(self, timeout: float = 30.0) -> None:
        assert await self.projections.wait_until_current(timeout), await self.projections.status()


def make_projections(
    dsn: str,
    pool: asyncpg.Pool,
    store: PostgresEventStore,
    notifications: LogNotifications,
    projections: Sequence[Projection],
    *,
    lock_retry_seconds: float = 0.2,
    tail_batch: int = 200,
    announce: Callable[[Callable[[], str]], None] | None = None,
    fallback_seconds: float = FALLBACK_SECONDS,
) -> Projections:
    tail = LogTail(store, notifications.waiter(), batch_size=tail_batch, poll_interval=0.2)
    return Projections(
        pool,
        CombinedLogSource(tail, store),
        projections,
        connect=lambda: database.connect(dsn),
        lock_retry_seconds=lock_retry_seconds,
        build_batch_size=1000,
        announce=announce,
        fallback_seconds=fallback_seconds,
    )


@asynccontextmanager
async def running(
    dsn: str,
    projections: Sequence[Projection] = ALL_PROJECTIONS,
    *,
    start: bool = True,
    tail_batch: int = 200,
    announce: bool = False,
    listen: bool = False,
    fallback_seconds: float = FALLBACK_SECONDS,
) -> AsyncIterator[World]:
    """A process's worth of runtime on ``dsn``: pool, store, notifications, and ``Projections``;
    ``announce``: its runners' progress is NOTIFYed, ``listen``: its barrier hears those NOTIFYs (as
    the composition root wires both)."""
    pool = await database.create_pool(dsn, min_size=1, max_size=20)
    notifications = LogNotifications(lambda: database.connect(dsn))
    await notifications.start()
    store = PostgresEventStore(pool)
    notices = ProgressNotices(pool)
    facade = make_projections(
        dsn,
        pool,
        store,
        notifications,
        projections,
        tail_batch=tail_batch,
        announce=notices.moved if announce else None,
        fallback_seconds=fallback_seconds,
    )
    if listen:
        notifications.on_read_models(facade.progressed_elsewhere)
    if start:
        await facade.start()
    try:
        yield World(dsn, pool, store, notifications, facade)
    finally:
        await facade.stop()
        await notices.flush()
        await notifications.stop()
        await pool.close()


async def table_text(connection: Any, relation: str, table: str) -> list[str]:
    """Every row of ``relation`` as PostgreSQL's text of the whole row, in primary-key order."""
    rows = await connection.fetch(
        f"SELECT t::text AS row FROM {relation} AS t ORDER BY {PRIMARY_KEYS[table]}"
    )
    return [row["row"] for row in rows]


async def views_text(connection: Any, tables: Sequence[str] = tuple(PRIMARY_KEYS)) -> dict[str, list[str]]:
    return {table: await table_text(connection, f"rm_{table}", table) for table in tables}


async def append_generated(store: PostgresEventStore, log: Sequence[Generated], writers: int = 4) -> None:
    """Appends a generated log with ``writers`` concurrent writers. Each token's streams (its own and
    its usage stream) and each other stream stay with one writer, in order; consecutive events of one
    stream go in one append."""

    def owner(stream_id: str) -> int:
        key = stream_id.replace("token-usage-", "token-")
        return hash(key) % writers

    queues: list[list[list[Generated]]] = [[] for _ in range(writers)]
    for item in log:
        queue = queues[owner(item.stream_id)]
        if queue and queue[-1][0].stream_id == item.stream_id and len(queue[-1]) < 5:
            queue[-1].append(item)
        else:
            queue.append([item])

    async def write(groups: list[list[Generated]]) -> None:
        for group in groups:
            await store.append_many(
                [
                    StreamAppend(
                        group[0].stream_id,
                        [new_event(item.event, item.occurred_at) for item in group],
                        StreamState.ANY,
                    )
                ]
            )

    await asyncio.gather(*(write(q) for q in queues))


class Journal:
    """A test projection that records every event it sees once: a row per position, so a second
    application of an event (two active runners, or a replay) fails on the primary key."""

    name = "journal"
    version = 1
    tables: Sequence[str] = ("journal",)

    def ddl(self) -> Sequence[str]:
        return ("CREATE TABLE {journal} (position bigint PRIMARY KEY, type text NOT NULL)",)

    def apply(self, event: Any) -> Sequence[Statement]:
        return (
            Statement(
                "INSERT INTO {journal} (position, type) VALUES ($1, $2)", (event.global_position, event.type)
            ),
        )
