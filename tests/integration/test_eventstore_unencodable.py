"""Past the checks every store makes in Python (tests/contract), the PostgreSQL store's database
refusal of content is an InvalidAppend too."""

from collections.abc import AsyncIterator

import asyncpg
import pytest

from events import NewEvent
from events.tokens import TokenUsed
from services.eventstore import PostgresEventStore
from services.eventstore.errors import translate
from services.ports import InvalidAppend
from tests.integration.eventstore_helpers import (
    TL_APPEND_SQL,
    create_database,
    metadata,
    open_store,
    stream_name,
    table_counts,
    tl_append_args,
)


@pytest.fixture(scope="module")
async def isolated(
    postgres_server_dsn: str, template_dsn: str
) -> AsyncIterator[tuple[asyncpg.Pool, PostgresEventStore]]:
    """A store on a database of this module's own, so table counts mean something."""
    dsn = await create_database(postgres_server_dsn, template_dsn=template_dsn)
    async with open_store(dsn, max_size=3) as (pool, store):
        yield pool, store


def _used() -> NewEvent:
    used = TokenUsed(token_id="t", account_id="a", used_at=metadata().occurred_at, operation="GET /v3/x")
    return NewEvent(event=used, metadata=metadata())


async def test_the_databases_refusal_of_content_is_an_invalid_append_too(
    isolated: tuple[asyncpg.Pool, PostgresEventStore],
) -> None:
    """Past the checks in Python (a raw ``tl_append`` call), U+0000 in jsonb is a data exception, which
    ``translate`` makes InvalidAppend, never an error a caller would retry."""
    pool, _store = isolated
    arguments = tl_append_args(stream_name(), [_used()])
    arguments[5] = [arguments[5][0].replace("GET /v3/x", "GET /v3/\\u0000")]
    before = await table_counts(pool)
    with pytest.raises(asyncpg.PostgresError) as raised:
        await pool.fetch(TL_APPEND_SQL, *arguments)
    assert isinstance(translate(raised.value), InvalidAppend), raised.value.sqlstate
    assert await table_counts(pool) == before
