"""Schema migrations: idempotent, safe when several processes start at once on a new database, the
same schema as the release made, and ``functions/tl_append.sql`` applied on every run, so that a
database of the release (its function as migration 0004 left it) ends with the same function and
keeps its log and hash chains."""

import asyncio
import json
import re
from collections.abc import AsyncIterator
from importlib import resources

import asyncpg
import pytest

from services import database
from services.audit.verify import verify
from services.eventstore import PostgresEventStore
from services.eventstore.migrate import apply_migrations, is_up_to_date
from services.ports import StreamState
from tests.integration.eventstore_helpers import create_database, created, database_name, events, stream_name
from tests.integration.schema_catalogue import RELEASE_SCHEMA, schema_definition

ALL_MIGRATIONS = sorted(
    entry.name
    for entry in (resources.files("services.eventstore") / "migrations").iterdir()
    if entry.name.endswith(".sql")
)

SCHEMA_SQL = """
SELECT 'relation' AS kind, c.relname AS name, c.relkind::text AS detail
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'
UNION ALL
SELECT 'function', p.proname, pg_get_function_identity_arguments(p.oid)
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'
UNION ALL
SELECT 'trigger', t.tgname, t.tgrelid::regclass::text FROM pg_trigger t WHERE NOT t.tgisinternal
ORDER BY 1, 2, 3
"""


async def _schema(dsn: str) -> list[tuple[str, str, str]]:
    """Every relation, function and trigger of the public schema, as (kind, name, detail)."""
    connection = await database.connect(dsn)
    try:
        return [tuple(r) for r in await connection.fetch(SCHEMA_SQL)]
    finally:
        await connection.close()


async def _drop(server_dsn: str, dsn: str) -> None:
    connection = await asyncpg.connect(server_dsn)
    try:
        await connection.execute(f'DROP DATABASE "{database_name(dsn)}" WITH (FORCE)')
    finally:
        await connection.close()


async def test_applying_migrations_twice_is_a_no_op(postgres_server_dsn: str) -> None:
    """On a new database the first run applies every migration, the second applies none and changes
    nothing."""
    dsn = await create_database(postgres_server_dsn)
    try:
        assert ALL_MIGRATIONS, "no migrations found"
        assert await database.migrate(dsn) == ALL_MIGRATIONS
        schema = await _schema(dsn)
        assert ("relation", "events", "r") in schema
        assert any(kind == "function" and name == "tl_append" for kind, name, _ in schema)

        assert await database.migrate(dsn) == []
        assert await _schema(dsn) == schema
        connection = await database.connect(dsn)
        try:
            assert await is_up_to_date(connection)
            recorded = await connection.fetch("SELECT name FROM schema_migrations ORDER BY version")
            assert [r["name"] for r in recorded] == ALL_MIGRATIONS
        finally:
            await connection.close()
    finally:
        await _drop(postgres_server_dsn, dsn)


async def test_a_migrated_database_is_up_to_date(dsn: str) -> None:
    """The session's (already migrated) database needs nothing more."""
    assert await database.migrate(dsn) == []


async def test_concurrent_migrations_on_a_new_database_apply_once(postgres_server_dsn: str) -> None:
    """Four processes migrating one new, empty database at the same moment all succeed; one of them
    applies every migration, and the schema exists once (over three rounds, to give the race a chance)."""
    for _ in range(3):
        dsn = await create_database(postgres_server_dsn)
        connections = [await database.connect(dsn) for _ in range(4)]
        try:
            results = await asyncio.gather(*(apply_migrations(c) for c in connections))
            assert sorted(results) == [[], [], [], ALL_MIGRATIONS]
            assert await connections[0].fetchval("SELECT count(*) FROM schema_migrations") == len(
                ALL_MIGRATIONS
            )
            assert await is_up_to_date(connections[0])
        finally:
            for connection in connections:
                await connection.close()
        schema = await _schema(dsn)
        assert len(schema) == len(set(schema))
        assert sum(1 for s in schema if s[:2] == ("relation", "events")) == 1
        assert sum(1 for s in schema if s[0] == "function" and s[1] == "tl_append") == 1
        await _drop(postgres_server_dsn, dsn)


@pytest.fixture
async def fresh(postgres_server_dsn: str) -> AsyncIterator[str]:
    """A new database with no schema at all; dropped afterwards."""
    dsn = await create_database(postgres_server_dsn)
    yield dsn
    await _drop(postgres_server_dsn, dsn)


async def _definition(dsn: str) -> bytes:
    connection = await database.connect(dsn)
    try:
        return await schema_definition(connection)
    finally:
        await connection.close()


def _release_functions() -> dict[str, str]:
    functions: dict[str, str] = json.loads(RELEASE_SCHEMA.read_text())["functions"]
    return functions


async def test_a_new_database_gets_exactly_the_schema_of_the_release(fresh: str) -> None:
    """Tables, indexes, constraints, triggers and every function, tl_append's full text included."""
    assert await database.migrate(fresh) == ALL_MIGRATIONS
    assert await _definition(fresh) == RELEASE_SCHEMA.read_bytes()


async def test_a_database_of_the_release_keeps_its_function_log_and_chains(fresh: str) -> None:
    """A database as the release left it (every migration applied, each function as the release
    defined it) and holding a log, migrated again: nothing to apply, the same schema and function,
    the log intact, and appends continue its hash chains."""
    await database.migrate(fresh)
    connection = await database.connect(fresh)
    try:
        for definition in _release_functions().values():
            await connection.execute(definition)
    finally:
        await connection.close()
    pool = await database.create_pool(fresh, min_size=1, max_size=2)
    try:
        store = PostgresEventStore(pool)
        stream = stream_name()
        await store.append(stream, [created(), *events(2)], StreamState.NO_STREAM)
        assert await database.migrate(fresh) == []
        assert await _definition(fresh) == RELEASE_SCHEMA.read_bytes()
        await store.append(stream, events(2), 3)
        await store.append(stream_name(), events(1), StreamState.NO_STREAM)
        report = await verify(pool)
        assert report.intact and report.events == 6, report.summary()
    finally:
        await pool.close()


async def test_the_function_file_is_applied_on_every_run(fresh: str) -> None:
    """Whatever body tl_append has when the service starts (an older one, say), the migrator leaves
    the current definition, even when no migration is missing."""
    await database.migrate(fresh)
    [(name, release)] = [(n, d) for n, d in _release_functions().items() if n.startswith("tl_append(")]
    stale = re.sub(
        r"\$function\$.*\$function\$",
        "$function$ BEGIN RAISE EXCEPTION 'stale tl_append'; END $function$",
        release,
        flags=re.DOTALL,
    )
    connection = await database.connect(fresh)
    try:
        await connection.execute(stale)
        assert await connection.fetchval("SELECT pg_get_functiondef('tl_append'::regproc)") != release
    finally:
        await connection.close()
    assert await database.migrate(fresh) == []
    assert json.loads(await _definition(fresh))["functions"][name] == release
    pool = await database.create_pool(fresh, min_size=1, max_size=2)
    try:
        result = await PostgresEventStore(pool).append(stream_name(), events(2), StreamState.NO_STREAM)
        assert [e.stream_version for e in result.events] == [1, 2]
    finally:
        await pool.close()
