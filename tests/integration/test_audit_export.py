"""``audit export`` / ``audit import``: the right lines for each filter, never a secret hash, and a
round trip (export, import into a fresh database, build the projections) that rebuilds the same read
models, with ``token_secrets`` equal except for the secret hashes, which were never exported."""

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest

from bench.generated_log import generate
from events.registry import UnknownEventType
from services.audit.export import EVERYTHING, ExportedActor, ExportedEvent, ExportFilter, export_pages
from services.audit.importer import PLACEHOLDER_PREFIX, ImportRefused, import_lines
from services.audit.verify import verify
from services.eventstore import PostgresEventStore
from tests.integration.eventstore_helpers import create_database, open_store
from tests.integration.test_projection_support import (
    PRIMARY_KEYS,
    append_generated,
    running,
    views_text,
)

_decoder = msgspec.json.Decoder(ExportedEvent)
EVENTS = 1500
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Source:
    dsn: str
    pool: asyncpg.Pool


@pytest.fixture
async def source(empty_database: str) -> AsyncIterator[Source]:
    """A realistic log of EVENTS events (accounts, tokens with secrets, roles, teams)."""
    async with open_store(empty_database, max_size=8) as (pool, store):
        await append_generated(store, generate(EVENTS, seed=5))
        yield Source(empty_database, pool)


@pytest.fixture
async def target(postgres_server_dsn: str, template_dsn: str) -> str:
    """Another fresh, migrated, empty database."""
    return await create_database(postgres_server_dsn, template_dsn=template_dsn)


async def export_all(pool: asyncpg.Pool, selection: ExportFilter = EVERYTHING) -> bytes:
    return b"".join([chunk async for chunk in export_pages(pool, selection)])


def parsed(output: bytes) -> list[ExportedEvent]:
    return [_decoder.decode(line) for line in output.splitlines()]


async def run_cli(dsn: str, *args: str, stdin: bytes | None = None) -> bytes:
    stdout, _ = await run_cli_reporting(dsn, *args, stdin=stdin)
    return stdout


async def run_cli_reporting(dsn: str, *args: str, stdin: bytes | None = None) -> tuple[bytes, bytes]:
    """``tokenledger audit ARGS``: its stdout and stderr (it must succeed)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        "audit",
        *args,
        env={**os.environ, "DATABASE_URL": dsn},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate(stdin)
    assert process.returncode == 0, stderr.decode()
    return stdout, stderr


async def test_export_is_the_whole_log_in_order_without_secret_hashes(source: Source) -> None:
    output = await export_all(source.pool)
    lines = parsed(output)
    rows = await source.pool.fetch(
        "SELECT event_id, stream_id, stream_version, global_position, type, recorded_at"
        " FROM events ORDER BY tx_id, global_position"
    )
    assert len(rows) == EVENTS
    assert [
        (e.event_id, e.stream_id, e.stream_version, e.position, e.type, e.recorded_at) for e in lines
    ] == [tuple(r) for r in rows]
    assert all(e.occurred_at == e.metadata.occurred_at for e in lines)
    assert all(
        e.actor == ExportedActor(account_id=e.metadata.actor, token_id=e.metadata.actor_token_id)
        for e in lines
    )
    secrets = await source.pool.fetch(
        "SELECT data ->> 'secret_hash' AS s FROM events WHERE data ? 'secret_hash'"
    )
    assert len(secrets) > 10
    assert b"secret_hash" not in output
    assert not any(row["s"].encode() in output for row in secrets)
    issued = next(e for e in lines if e.type == "token.issued")
    assert {"token_id", "account_id", "name", "expires_at"} <= set(issued.data)


UTC_INSTANT = rb'"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z"'


async def test_lines_are_compact_json_with_utc_instants_and_the_api_actor(source: Source) -> None:
    output = await export_all(source.pool)
    for line in output.splitlines():
        assert msgspec.json.format(line, indent=-1) == line, line
        raw = msgspec.json.decode(line)
        for field in ("occurred_at", "recorded_at"):
            assert re.fullmatch(UTC_INSTANT, msgspec.json.encode(raw[field])), raw[field]
        assert re.fullmatch(UTC_INSTANT, msgspec.json.encode(raw["metadata"]["occurred_at"]))
        assert raw["actor"] == {
            "account_id": raw["metadata"].get("actor"),
            "token_id": raw["metadata"].get("actor_token_id"),
        }


async def test_export_pages_past_the_page_size(source: Source, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("services.audit.export.PAGE_SIZE", 7)
    chunks = [chunk async for chunk in export_pages(source.pool)]
    assert len(chunks) == -(-EVENTS // 7)
    assert b"".join(chunks) == await export_all(source.pool)


async def test_export_by_account_keeps_its_events_only(source: Source) -> None:
    account_id: str = await source.pool.fetchval(
        "SELECT data ->> 'account_id' FROM events WHERE type = 'token.issued'"
        " GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
    )
    lines = parsed(await export_all(source.pool, ExportFilter(account_id=account_id)))
    expected = await source.pool.fetchval(
        "SELECT count(*) FROM events WHERE data ->> 'account_id' = $1 OR stream_id = 'account-' || $1",
        account_id,
    )
    assert len(lines) == expected > 3
    assert all(e.data.get("account_id") == account_id for e in lines)
    assert {"account.created", "token.issued"} <= {e.type for e in lines}
    cli_lines = parsed(await run_cli(source.dsn, "export", "--account", account_id))
    assert cli_lines == lines


async def test_export_by_recording_time(source: Source) -> None:
    boundary: datetime = await source.pool.fetchval("SELECT clock_timestamp()")
    await append_generated(PostgresEventStore(source.pool), generate(40, seed=6)[20:])
    later: datetime = await source.pool.fetchval("SELECT clock_timestamp()")
    await append_generated(PostgresEventStore(source.pool), generate(80, seed=7)[60:])

    window = parsed(await export_all(source.pool, ExportFilter(recorded_from=boundary, recorded_to=later)))
    assert len(window) == 20 and all(boundary <= e.recorded_at < later for e in window)
    before = parsed(await export_all(source.pool, ExportFilter(recorded_to=boundary)))
    after = parsed(await export_all(source.pool, ExportFilter(recorded_from=later)))
    assert (len(before), len(after)) == (EVENTS, 20)
    cli = parsed(
        await run_cli(source.dsn, "export", "--from", boundary.isoformat(), "--to", later.isoformat())
    )
    assert cli == window


async def test_round_trip_rebuilds_the_same_read_models(source: Source, target: str, tmp_path: Path) -> None:
    async with running(source.dsn) as world:
        await world.current(60)
        async with world.pool.acquire() as connection:
            original = await views_text(connection)
            original_secrets = await secrets_without_hashes(connection)
    exported = tmp_path / "log.jsonl"
    exported.write_bytes(await run_cli(source.dsn, "export"))

    _, report = await run_cli_reporting(target, "import", str(exported))
    assert report.decode().rstrip().endswith("tokenledger projections rebuild --all"), report

    async with running(target) as world:
        await world.current(60)
        async with world.pool.acquire() as connection:
            rebuilt = await views_text(connection)
            rebuilt_secrets = await secrets_without_hashes(connection)
            placeholders = await connection.fetchval(
                "SELECT bool_and(secret_hash LIKE $1 || '%') FROM rm_token_secrets", PLACEHOLDER_PREFIX
            )
        assert (await verify(world.pool)).intact
    comparable = [t for t in PRIMARY_KEYS if t != "token_secrets"]
    assert {t: rebuilt[t] for t in comparable} == {t: original[t] for t in comparable}
    assert sum(len(original[t]) for t in comparable) > 200
    assert rebuilt_secrets == original_secrets and len(original_secrets) > 10
    assert placeholders
    # The same lines, but for the new log's recording times and positions.
    again = parsed(await run_cli(target, "export"))
    assert [same_event(e) for e in again] == [same_event(e) for e in parsed(exported.read_bytes())]
    async with open_store(target) as (pool, _):
        with pytest.raises(ImportRefused, match="not empty"):
            await import_lines(pool, exported.read_bytes().splitlines())


def same_event(line: ExportedEvent) -> ExportedEvent:
    return msgspec.structs.replace(line, recorded_at=EPOCH, position=0)


async def secrets_without_hashes(connection: Any) -> list[str]:
    rows = await connection.fetch(
        "SELECT (token_id, secret_version, valid_until, retired)::text AS row FROM rm_token_secrets"
        " ORDER BY token_id, secret_version"
    )
    return [row["row"] for row in rows]


async def test_import_refuses_a_filtered_export(source: Source, target: str) -> None:
    account_id: str = await source.pool.fetchval(
        "SELECT data ->> 'account_id' FROM events WHERE type = 'token.rotated' LIMIT 1"
    )
    lines = (await export_all(source.pool, ExportFilter(account_id=account_id))).splitlines()
    async with open_store(target) as (pool, _):
        with pytest.raises(ImportRefused, match="does not follow"):
            await import_lines(pool, lines[:1] + lines[2:])


async def test_export_refuses_an_event_type_it_does_not_know(source: Source) -> None:
    """Its private fields are unknown, so nothing of it may leave."""
    await source.pool.execute(
        "INSERT INTO events (stream_id, stream_version, event_id, type, data, metadata) VALUES"
        " ('future-1', 1, gen_random_uuid(), 'future.thing', '{\"secret\": \"x\"}',"
        ' \'{"occurred_at": "2030-01-01T00:00:00Z"}\')'
    )
    with pytest.raises(UnknownEventType, match=r"future\.thing"):
        await export_all(source.pool)
