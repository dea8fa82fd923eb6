"""Versioned schema migrations and repeatable function definitions, applied at start-up.

Migrations are the numbered ``migrations/NNNN_name.sql`` files: schema (tables, indexes, triggers,
backfills), applied in order, once, each in its own transaction together with its row in
``schema_migrations``. Functions whose body evolves (``tl_append``) are not restated migration after
migration: each has one current definition in ``functions/*.sql`` (``CREATE OR REPLACE``), applied
in name order after the migrations on every run, so a database of any release ends with the
definitions of this code, and a reader finds them in one place.

A session advisory lock held over the whole run makes concurrent start-ups safe: the second process
waits until the first has applied every migration and function, then finds nothing left to do (a
lock per migration let two processes split the list between them, and one could return before the
schema it needs was complete).
"""

from importlib import resources

import asyncpg

_LOCK_KEY = 0x746F6B656E6C6467  # "tokenldg"


def _functions() -> list[str]:
    """The text of every ``functions/*.sql`` file, in name order."""
    folder = resources.files("services.eventstore") / "functions"
    files = sorted((e for e in folder.iterdir() if e.name.endswith(".sql")), key=lambda e: e.name)
    return [entry.read_text() for entry in files]


def _migrations() -> list[tuple[int, str, str]]:
    folder = resources.files("services.eventstore") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number = int(entry.name.split("_", 1)[0])
            found.append((number, entry.name, entry.read_text()))
    found.sort()
    numbers = [n for n, _, _ in found]
    if numbers != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration numbers must run 1..n without gaps, found {numbers}")
    return found


async def apply_migrations(connection: asyncpg.Connection) -> list[str]:
    """Applies the migrations that are missing, then every function definition; returns the names
    of the migrations applied now (empty when up to date)."""
    applied_now: list[str] = []
    await connection.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        for number, name, sql in _migrations():
            if await _apply(connection, number, name, sql):
                applied_now.append(name)
        for sql in _functions():
            async with connection.transaction():
                await connection.execute(sql)
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now


async def _apply(connection: asyncpg.Connection, number: int, name: str, sql: str) -> bool:
    """Applies one migration with its ``schema_migrations`` row; False when it was applied before."""
    async with connection.transaction():
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version int PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)", number
        )
        if done:
            return False
        await connection.execute(sql)
        await connection.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", number, name
        )
        return True


async def is_up_to_date(connection: asyncpg.Connection) -> bool:
    """True when every migration this code knows is applied."""
    exists = await connection.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return False
    count: int = await connection.fetchval("SELECT count(*) FROM schema_migrations")
    return count >= len(_migrations())
