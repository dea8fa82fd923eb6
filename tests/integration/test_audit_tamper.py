"""Tamper evidence: an attacker with SQL access (triggers off, as a superuser can) edits, deletes,
inserts or moves rows; ``audit verify`` names the first event touched, and the CLI exits non-zero."""

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import pytest

from events import Metadata, NewEvent
from events.accounts import AccountCreated, AccountUpdated
from services import database
from services.audit.checkpoints import seal
from services.audit.sealer import CheckpointSealer
from services.audit.verify import ALTERED, CHECKPOINT, DELETED, INSERTED, verify
from services.eventstore import PostgresEventStore
from services.ports import StreamState


@dataclass
class Log:
    dsn: str
    pool: asyncpg.Pool
    positions: dict[tuple[str, int], int]


def _event(account_id: str, n: int) -> NewEvent:
    body = (
        AccountCreated(account_id=account_id, name=f"bot-{account_id}")
        if n == 1
        else AccountUpdated(account_id=account_id, name=f"bot-{account_id}", description=f"edit {n}")
    )
    return NewEvent(event=body, metadata=Metadata(occurred_at=datetime.now(UTC), actor="system:tests"))


@pytest.fixture
async def log(empty_database: str) -> AsyncIterator[Log]:
    """Streams account-a, -b, -c with 3 events each, interleaved, all sealed; then two more events
    in account-d, not sealed."""
    pool = await database.create_pool(empty_database, min_size=1, max_size=4)
    store = PostgresEventStore(pool)
    for n in (1, 2, 3):
        for name in ("a", "b", "c"):
            await store.append(f"account-{name}", [_event(name, n)], StreamState.ANY)
    assert len(await seal(pool, events_per_checkpoint=4)) == 3
    await store.append("account-d", [_event("d", 1), _event("d", 2)], StreamState.NO_STREAM)
    rows = await pool.fetch("SELECT stream_id, stream_version, global_position FROM events")
    positions = {(r["stream_id"], r["stream_version"]): r["global_position"] for r in rows}
    try:
        yield Log(empty_database, pool, positions)
    finally:
        await pool.close()


async def as_attacker(pool: asyncpg.Pool, *statements: str) -> None:
    """Runs SQL with triggers off (the append-only triggers would refuse it otherwise)."""
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute("SET LOCAL session_replication_role = replica")
        for statement in statements:
            await connection.execute(statement)


async def cli_verify(dsn: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        "audit",
        "verify",
        env={**os.environ, "DATABASE_URL": dsn},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_an_untouched_log_verifies(log: Log) -> None:
    report = await verify(log.pool)
    assert report.intact, report.findings
    assert (report.events, report.streams, report.checkpoints, report.unsealed_events) == (11, 4, 3, 2)
    code, output = await cli_verify(log.dsn)
    assert code == 0, output
    assert "intact" in output and report.head_checkpoint_hash is not None
    assert report.head_checkpoint_hash in output


async def test_the_append_only_triggers_still_refuse_changes(log: Log) -> None:
    for statement in ("UPDATE events SET type = 'x'", "DELETE FROM events", "DELETE FROM log_checkpoints"):
        with pytest.raises(asyncpg.PostgresError) as refused:
            await log.pool.execute(statement)
        assert refused.value.sqlstate == "TLI01"


UPDATE_ROW = "UPDATE events SET {change} WHERE stream_id = '{stream}' AND stream_version = {version}"
DELETE_ROW = "DELETE FROM events WHERE stream_id = '{stream}' AND stream_version = {version}"


def _update(change: str, stream: str, version: int) -> str:
    return UPDATE_ROW.format(change=change, stream=stream, version=version)


def _delete(stream: str, version: int) -> str:
    return DELETE_ROW.format(stream=stream, version=version)


def _insert(stream: str, version: int) -> str:
    data = f'{{"type": "account.updated", "account_id": "b", "name": "evil", "description": "{version}"}}'
    return (
        "INSERT INTO events (stream_id, stream_version, event_id, type, data, metadata) VALUES"
        f" ('{stream}', {version}, '{uuid.uuid4()}', 'account.updated', '{data}',"
        f' \'{{"occurred_at": "2020-01-01T00:00:00Z"}}\')'
    )


# (what the attacker does, the first finding's kind, stream, version, and whose position it names)
CASES: dict[str, tuple[list[str], str, str, int, tuple[str, int]]] = {
    "edit data": (
        [_update("data = jsonb_set(data, '{description}', '\"harmless\"')", "account-b", 2)],
        ALTERED,
        "account-b",
        2,
        ("account-b", 2),
    ),
    "edit metadata": (
        [_update("metadata = jsonb_set(metadata, '{actor}', '\"someone-else\"')", "account-c", 3)],
        ALTERED,
        "account-c",
        3,
        ("account-c", 3),
    ),
    "delete a row": ([_delete("account-a", 2)], DELETED, "account-a", 2, ("account-a", 3)),
    "delete the last row": ([_delete("account-d", 2)], DELETED, "account-d", 2, ("account-d", 1)),
    "insert a row": ([_insert("account-b", 4)], INSERTED, "account-b", 4, ("account-b", 4)),
    "insert into a new stream": ([_insert("account-x", 1)], INSERTED, "account-x", 1, ("account-x", 1)),
    "move an event in the commit order": (
        [_update("tx_id = (tx_id::text::bigint + 100000)::text::xid8", "account-a", 1)],
        ALTERED,
        "account-a",
        1,
        ("account-a", 1),
    ),
    "backdate recorded_at": (
        [_update("recorded_at = recorded_at - interval '1 day'", "account-c", 1)],
        ALTERED,
        "account-c",
        1,
        ("account-c", 1),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_tampering_is_caught_at_the_first_event_touched(log: Log, case: str) -> None:
    statements, kind, stream, version, position_of = CASES[case]
    await as_attacker(log.pool, *statements)
    position = log.positions.get(position_of)
    if position is None:  # an inserted row: its position was drawn by the attacker's INSERT
        position = await log.pool.fetchval(
            "SELECT global_position FROM events WHERE stream_id = $1 AND stream_version = $2", *position_of
        )

    report = await verify(log.pool)

    first = report.first
    assert first is not None, f"{case} was not caught"
    assert (first.kind, first.stream_id, first.stream_version, first.position) == (
        kind,
        stream,
        version,
        position,
    ), report.findings
    code, output = await cli_verify(log.dsn)
    assert code == 1
    assert f"TAMPERED: first {first.describe()}" in output


async def test_a_consistent_rewrite_of_a_stream_is_caught_by_its_checkpoint(log: Log) -> None:
    """An attacker who knows the formula rewrites account-b version 2 and re-chains versions 2 and 3
    and the stream's head: every stream chain holds, the checkpoint covering them does not."""
    rechain = (
        "UPDATE events e SET hash = tl_event_hash(p.hash, e.stream_id, e.stream_version, e.event_id,"
        " e.type, e.global_position, e.tx_id, e.recorded_at, e.data, e.metadata)"
        " FROM events p WHERE p.stream_id = e.stream_id AND p.stream_version = e.stream_version - 1"
        " AND e.stream_id = 'account-b' AND e.stream_version = {version}"
    )
    await as_attacker(
        log.pool,
        _update("data = jsonb_set(data, '{description}', '\"rewritten\"')", "account-b", 2),
        rechain.format(version=2),
        rechain.format(version=3),
        "UPDATE streams s SET head_hash = e.hash FROM events e"
        " WHERE s.stream_id = 'account-b' AND e.stream_id = s.stream_id AND e.stream_version = 3",
    )
    report = await verify(log.pool)
    assert [f.kind for f in report.findings] == [CHECKPOINT], report.findings
    # Checkpoint 2 covers the 5th to 8th events of the log, account-b version 2 among them.
    assert report.findings[0].position == log.positions[("account-b", 2)]
    assert "checkpoint 2 " in report.findings[0].detail


async def test_altering_a_checkpoint_is_caught(log: Log) -> None:
    await as_attacker(log.pool, "UPDATE log_checkpoints SET hash = sha256('forged') WHERE checkpoint = 2")
    findings = (await verify(log.pool)).findings
    # Checkpoint 3 chains from the forged hash, so it no longer matches either.
    assert [(f.kind, f.detail.split(" (")[0]) for f in findings] == [
        (CHECKPOINT, "checkpoint 2"),
        (CHECKPOINT, "checkpoint 3"),
    ]


async def test_removing_a_checkpoint_is_caught(log: Log) -> None:
    await as_attacker(log.pool, "DELETE FROM log_checkpoints WHERE checkpoint = 2")
    findings = (await verify(log.pool)).findings
    assert [(f.kind, f.detail) for f in findings] == [(CHECKPOINT, "checkpoint 2 is missing")]


async def test_sealing_is_chained_and_resumes_where_it_stopped(log: Log) -> None:
    rows = await log.pool.fetch("SELECT checkpoint, event_count, last_position FROM log_checkpoints")
    assert [(r["checkpoint"], r["event_count"]) for r in rows] == [(1, 4), (2, 4), (3, 1)]
    sealed = await seal(log.pool)
    assert [(c.checkpoint, c.event_count) for c in sealed] == [(4, 2)]
    assert await seal(log.pool) == []
    assert (await verify(log.pool)).unsealed_events == 0


async def test_the_sealer_worker_seals_what_commits(log: Log) -> None:
    sealer = CheckpointSealer(log.pool, interval=0.05)
    await sealer.start()
    try:
        await PostgresEventStore(log.pool).append("account-e", [_event("e", 1)], StreamState.NO_STREAM)
        async with asyncio.timeout(10):
            while (await verify(log.pool)).unsealed_events:
                await asyncio.sleep(0.05)
    finally:
        await sealer.stop()
    report = await verify(log.pool)
    assert report.intact and report.checkpoints >= 4
