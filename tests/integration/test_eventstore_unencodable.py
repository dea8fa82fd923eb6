"""Text PostgreSQL cannot store (U+0000, lone surrogates: what a NUL byte or undecodable bytes from a
client become) is refused with InvalidAppend and writes nothing, wherever it sits in an append; any
other text is stored and read back unchanged."""

from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events import NewEvent
from events.accounts import AccountCreated
from events.tokens import TokenUsed
from services.eventstore import PostgresEventStore
from services.eventstore.errors import translate
from services.ports import Claim, InvalidAppend, StreamState
from tests.integration.eventstore_helpers import (
    TL_APPEND_SQL,
    create_database,
    created,
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


def _used(**fields: Any) -> NewEvent:
    values = {"token_id": "t", "account_id": "a", "used_at": metadata().occurred_at, "operation": "GET /v3/x"}
    return NewEvent(event=TokenUsed(**{**values, **fields}), metadata=metadata())


Append = Callable[[PostgresEventStore], Any]

UNSTORABLE: dict[str, Append] = {
    "NUL in an event field": lambda s: s.append("s", [_used(operation="GET /v3/nope\x00")], StreamState.ANY),
    "lone surrogate in an event field": lambda s: s.append(
        "s", [_used(user_agent="curl/\udcff")], StreamState.ANY
    ),
    "NUL in metadata": lambda s: s.append(
        "s", [NewEvent(event=created().event, metadata=metadata(correlation_id="c\x00"))], StreamState.ANY
    ),
    "lone surrogate in metadata": lambda s: s.append(
        "s", [NewEvent(event=created().event, metadata=metadata(correlation_id="x\ud800"))], StreamState.ANY
    ),
    "NUL in a stream id": lambda s: s.append("s\x00", [created()], StreamState.ANY),
    "lone surrogate in a stream id": lambda s: s.append("s\udcff", [created()], StreamState.ANY),
    "NUL in a claim": lambda s: s.append("s", [created()], StreamState.ANY, claims=[Claim("name:\x00", "s")]),
    "lone surrogate in a claim": lambda s: s.append(
        "s", [created()], StreamState.ANY, claims=[Claim("name:\udcff", "s")]
    ),
    "NUL in a release": lambda s: s.append("s", [created()], StreamState.ANY, releases=["name:\x00"]),
    "lone surrogate in a release": lambda s: s.append("s", [created()], StreamState.ANY, releases=["\udcff"]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(UNSTORABLE))
async def test_unstorable_text_is_an_invalid_append_and_writes_nothing(
    isolated: tuple[asyncpg.Pool, PostgresEventStore], case: str
) -> None:
    pool, store = isolated
    before = await table_counts(pool)
    with pytest.raises(InvalidAppend):
        await UNSTORABLE[case](store)
    assert await table_counts(pool) == before


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


async def test_text_that_only_spells_an_escape_is_stored_as_it_is(
    isolated: tuple[asyncpg.Pool, PostgresEventStore],
) -> None:
    """A backslash followed by ``u0000`` is text, not U+0000: JSON escapes the backslash."""
    _pool, store = isolated
    stream = stream_name()
    for operation in ("GET /v3/\\u0000", "GET /v3/\\\\u0000", "tab\t\x1b[31m\u202e\U0001f600"):
        await store.append(stream, [_used(operation=operation)], StreamState.ANY)
    stored = [e.event.operation for e in await store.read_stream(stream)]  # type: ignore[attr-defined]
    assert stored == ["GET /v3/\\u0000", "GET /v3/\\\\u0000", "tab\t\x1b[31m\u202e\U0001f600"]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=st.text(st.characters(categories=None), max_size=40), correlation=st.text(max_size=20))
async def test_any_text_is_stored_unchanged_or_refused_with_nothing_written(
    isolated: tuple[asyncpg.Pool, PostgresEventStore], name: str, correlation: str
) -> None:
    """Any code points at all (surrogates and NUL included) in an event and its metadata: either
    the append succeeds and reads back equal, or it is InvalidAppend and nothing changed."""
    pool, store = isolated
    stream = stream_name()
    event = NewEvent(
        event=AccountCreated(account_id=stream, name=name), metadata=metadata(correlation_id=correlation)
    )
    before = await table_counts(pool)
    try:
        await store.append(
            stream, [event], StreamState.NO_STREAM, claims=[Claim(f"name:{stream}:{name}", stream)]
        )
    except InvalidAppend:
        assert await table_counts(pool) == before
        assert "\x00" in name + correlation or any("\ud800" <= c <= "\udfff" for c in name + correlation)
        return
    [stored] = await store.read_stream(stream)
    assert stored.event == event.event and stored.metadata == event.metadata
