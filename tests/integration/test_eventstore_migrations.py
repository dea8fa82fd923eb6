"""Schema migrations: idempotent, and safe when several processes start at once on a new database."""

import asyncio
from importlib import resources

import asyncpg

from services import database
from services.eventstore.migrate import apply_migrations, is_up_to_date
from tests.integration.eventstore_helpers import create_database, database_name

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
