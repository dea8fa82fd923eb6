"""The runtime's own tables, and the few statements that read and change them.

``projection_checkpoints`` has one row per projection that has been built: its live ``version``, the
``generation`` of its physical tables (0 for the first build of a version, k for the k-th rebuild),
the physical ``tables`` the views point at, and the cursor (``tx_id``, ``position``) up to which those
tables are up to date. The row is changed only in the transaction that changes the tables, so the
two always agree. It is also the switch's lock: every batch a runner applies starts by locking its
row (``FOR UPDATE``), and a rebuild switches tables under the same lock, so a switch never lands in
the middle of a batch, in this process or any other.

``projection_failures`` holds the poison event that stopped a projection, until a runner starts again.
"""

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import asyncpg

from events import LogCursor, RecordedEvent
from projections.base import Projection
from projections.naming import (
    LOCK_CLASS_SCHEMA,
    physical_name,
    physical_pattern,
    renderer,
    view_name,
)

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS projection_checkpoints ("
    " name text PRIMARY KEY,"
    " version int NOT NULL,"
    " tx_id bigint NOT NULL,"
    " position bigint NOT NULL,"
    " updated_at timestamptz NOT NULL DEFAULT now(),"
    " generation int NOT NULL DEFAULT 0,"
    " tables jsonb NOT NULL DEFAULT '{}')",
    # Should an older or simpler runner have created the table, add what this one needs.
    "ALTER TABLE projection_checkpoints ADD COLUMN IF NOT EXISTS generation int NOT NULL DEFAULT 0",
    "ALTER TABLE projection_checkpoints ADD COLUMN IF NOT EXISTS tables jsonb NOT NULL DEFAULT '{}'",
    "CREATE TABLE IF NOT EXISTS projection_failures ("
    " name text PRIMARY KEY,"
    " version int NOT NULL,"
    " tx_id bigint NOT NULL,"
    " position bigint NOT NULL,"
    " event_id uuid,"
    " event_type text,"
    " error text NOT NULL,"
    " failed_at timestamptz NOT NULL DEFAULT now())",
)


class LiveState(NamedTuple):
    """A projection's row in ``projection_checkpoints``."""

    name: str
    version: int
    generation: int
    cursor: LogCursor
    tables: dict[str, str]


class Failure(NamedTuple):
    version: int
    cursor: LogCursor
    event_id: str | None
    event_type: str | None
    error: str


async def ensure_schema(connection: Any) -> None:
    """Creates the bookkeeping tables if needed; safe to run from several processes at once."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1, 0)", LOCK_CLASS_SCHEMA)
        for statement in SCHEMA:
            await connection.execute(statement)


def _live(row: Any) -> LiveState:
    tables = row["tables"]
    if isinstance(tables, str):
        tables = json.loads(tables)
    return LiveState(
        name=row["name"],
        version=row["version"],
        generation=row["generation"],
        cursor=LogCursor(row["tx_id"], row["position"]),
        tables=dict(tables),
    )


_LOAD = (
    "SELECT name, version, generation, tx_id, position, tables::text AS tables"
    " FROM projection_checkpoints WHERE name = $1"
)
_LOAD_FOR_UPDATE = _LOAD + " FOR UPDATE"


async def load(connection: Any, name: str, *, for_update: bool = False) -> LiveState | None:
    row = await connection.fetchrow(_LOAD_FOR_UPDATE if for_update else _LOAD, name)
    return None if row is None else _live(row)


async def load_all(connection: Any, names: Sequence[str]) -> dict[str, LiveState]:
    rows = await connection.fetch(
        "SELECT name, version, generation, tx_id, position, tables::text AS tables"
        " FROM projection_checkpoints WHERE name = ANY($1::text[])",
        list(names),
    )
    return {row["name"]: _live(row) for row in rows}


async def save_cursor(connection: Any, name: str, cursor: LogCursor) -> None:
    await connection.execute(
        "UPDATE projection_checkpoints SET tx_id = $2, position = $3, updated_at = now() WHERE name = $1",
        name,
        cursor.tx_id,
        cursor.position,
    )


async def move_cursor(
    connection: Any, name: str, version: int, generation: int, reached: LogCursor, cursor: LogCursor
) -> bool:
    """Moves the checkpoint from ``reached`` to ``cursor`` in one statement of its own, for a batch
    that changes no row: True when the live state was still ``version``, ``generation`` and
    ``reached`` (what a batch's transaction checks under the row lock; the UPDATE checks it on the
    locked row), False (nothing changed) otherwise."""
    status: str = await connection.execute(
        "UPDATE projection_checkpoints SET tx_id = $6, position = $7, updated_at = now()"
        " WHERE name = $1 AND version = $2 AND generation = $3 AND (tx_id, position) = ($4, $5)",
        name,
        version,
        generation,
        reached.tx_id,
        reached.position,
        cursor.tx_id,
        cursor.position,
    )
    return status == "UPDATE 1"


async def record_failure(connection: Any, name: str, version: int, event: RecordedEvent, error: str) -> None:
    await connection.execute(
        "INSERT INTO projection_failures (name, version, tx_id, position, event_id, event_type, error)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO UPDATE SET"
        " version = EXCLUDED.version, tx_id = EXCLUDED.tx_id, position = EXCLUDED.position,"
        " event_id = EXCLUDED.event_id, event_type = EXCLUDED.event_type, error = EXCLUDED.error,"
        " failed_at = now()",
        name,
        version,
        event.tx_id,
        event.global_position,
        event.event_id,
        event.type,
        error,
    )


async def clear_failure(connection: Any, name: str) -> None:
    await connection.execute("DELETE FROM projection_failures WHERE name = $1", name)


async def load_failures(connection: Any, names: Sequence[str]) -> dict[str, Failure]:
    rows = await connection.fetch(
        "SELECT name, version, tx_id, position, event_id::text AS event_id, event_type, error"
        " FROM projection_failures WHERE name = ANY($1::text[])",
        list(names),
    )
    return {
        row["name"]: Failure(
            row["version"],
            LogCursor(row["tx_id"], row["position"]),
            row["event_id"],
            row["event_type"],
            row["error"],
        )
        for row in rows
    }


def needs_build(live: LiveState | None, projection: Projection) -> bool:
    """Whether the live tables are not (all of) this code's version of ``projection``."""
    return live is None or live.version != projection.version or set(live.tables) != set(projection.tables)


def tables_for(projection: Projection, generation: int) -> dict[str, str]:
    """Logical -> physical table names of ``projection`` at ``generation`` of its code's version."""
    return {table: physical_name(table, projection.version, generation) for table in projection.tables}


def _is_index_ddl(statement: str) -> bool:
    return not statement.lstrip().upper().startswith("CREATE TABLE")


async def create_tables(connection: Any, projection: Projection, tables: Mapping[str, str]) -> None:
    """Creates the tables (not yet their secondary indexes: see ``create_indexes``), replacing any
    leftovers of the same name."""
    render = renderer(tables)
    for physical in tables.values():
        await connection.execute(f"DROP TABLE IF EXISTS {physical}")
    for statement in projection.ddl():
        if not _is_index_ddl(statement):
            await connection.execute(render(statement))


async def create_indexes(connection: Any, projection: Projection, tables: Mapping[str, str]) -> None:
    """The rest of the DDL (indexes), run after bulk loading, which is faster than loading into them."""
    render = renderer(tables)
    for statement in projection.ddl():
        if _is_index_ddl(statement):
            await connection.execute(render(statement))
    for physical in tables.values():
        await connection.execute(f"ANALYZE {physical}")


async def point_views(connection: Any, new: Mapping[str, str], old: Mapping[str, str]) -> None:
    """Points ``rm_<table>`` at the new physical tables (inside the caller's transaction)."""
    for logical, physical in new.items():
        view = view_name(logical)
        try:
            async with connection.transaction():
                # Identifiers only, checked by projections.naming.
                await connection.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {physical}")  # noqa: S608
        except asyncpg.PostgresError:
            # The columns changed in a way CREATE OR REPLACE cannot express: replace the view.
            await connection.execute(f"DROP VIEW IF EXISTS {view}")
            await connection.execute(f"CREATE VIEW {view} AS SELECT * FROM {physical}")  # noqa: S608
    for logical in old.keys() - new.keys():
        await connection.execute(f"DROP VIEW IF EXISTS {view_name(logical)}")


async def make_live(
    connection: Any,
    projection: Projection,
    generation: int,
    tables: Mapping[str, str],
    cursor: LogCursor,
    previous: LiveState | None,
) -> None:
    """Within the caller's transaction: views -> ``tables`` and the row -> (version, generation,
    cursor). The previous tables are left for the caller to drop after the commit."""
    await point_views(connection, tables, previous.tables if previous else {})
    await connection.execute(
        "INSERT INTO projection_checkpoints (name, version, generation, tables, tx_id, position)"
        " VALUES ($1, $2, $3, $4::jsonb, $5, $6) ON CONFLICT (name) DO UPDATE SET"
        " version = EXCLUDED.version, generation = EXCLUDED.generation, tables = EXCLUDED.tables,"
        " tx_id = EXCLUDED.tx_id, position = EXCLUDED.position, updated_at = now()",
        projection.name,
        projection.version,
        generation,
        json.dumps(dict(tables)),
        cursor.tx_id,
        cursor.position,
    )


async def drop_tables(connection: Any, tables: Iterable[str]) -> None:
    for physical in tables:
        await connection.execute(f"DROP TABLE IF EXISTS {physical}")


async def stray_tables(connection: Any, projection: Projection, live: LiveState | None) -> list[str]:
    """Physical tables of ``projection``'s logical tables that no view uses: what a crashed build or
    an interrupted switch left behind. Only call this while holding the projection's build lock."""
    keep = set(live.tables.values()) if live else set()
    found: list[str] = []
    for table in projection.tables:
        rows = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename ~ $1",
            physical_pattern(table),
        )
        found.extend(row["tablename"] for row in rows if row["tablename"] not in keep)
    return sorted(found)
