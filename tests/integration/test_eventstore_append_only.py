"""The PostgreSQL log refuses to be changed: UPDATE, DELETE and TRUNCATE on ``events`` raise. The
request checks every store makes are in tests/contract."""

from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.eventstore import PostgresEventStore
from services.ports import Claim, StreamState
from tests.integration.eventstore_helpers import create_database, created, open_store


@pytest.fixture(scope="module")
async def isolated(
    postgres_server_dsn: str, template_dsn: str
) -> AsyncIterator[tuple[asyncpg.Pool, PostgresEventStore]]:
    """A store on a database of this module's own, holding one stream and one claim."""
    dsn = await create_database(postgres_server_dsn, template_dsn=template_dsn)
    async with open_store(dsn, max_size=3) as (pool, store):
        await store.append("existing", [created()], StreamState.NO_STREAM, claims=[Claim("k", "existing")])
        yield pool, store


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET type = 'account.deleted'",
        "UPDATE events SET data = '{}'::jsonb WHERE stream_version = 1",
        "DELETE FROM events",
        "DELETE FROM events WHERE stream_id = 'existing'",
        "TRUNCATE events",
        "TRUNCATE events CASCADE",
    ],
)
async def test_the_log_is_append_only(
    isolated: tuple[asyncpg.Pool, PostgresEventStore], statement: str
) -> None:
    """UPDATE, DELETE and TRUNCATE on events raise (SQLSTATE TLI01) and the rows stay as they were."""
    pool, store = isolated
    before = [dict(r) for r in await pool.fetch("SELECT * FROM events ORDER BY global_position")]
    with pytest.raises(asyncpg.PostgresError, match="append-only") as raised:
        await pool.execute(statement)
    assert raised.value.sqlstate == "TLI01"
    assert [dict(r) for r in await pool.fetch("SELECT * FROM events ORDER BY global_position")] == before
    assert len(await store.read_stream("existing")) == 1
