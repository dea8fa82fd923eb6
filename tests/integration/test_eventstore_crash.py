"""A writer process killed mid-load (SIGKILL) leaves a consistent log: every append it saw commit is
stored, nothing is half-written, and a restarted writer carries on."""

import asyncio
import json
import os
import signal
import sys
import uuid
from pathlib import Path

import asyncpg

from events.envelope import LOG_START
from services import database
from tests.integration.eventstore_helpers import open_store

SCRIPT = Path(__file__).with_name("eventstore_crash_writer.py")
REPO = Path(__file__).resolve().parents[2]
LOAD_SECONDS = 1.0

Reported = dict[uuid.UUID, tuple[str, int]]


async def _start_writer(dsn: str, *args: str) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        dsn,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


async def _read_reports(
    process: asyncio.subprocess.Process, reported: Reported, first: asyncio.Event
) -> None:
    """Collects complete lines only: a line cut short by the kill was never fully reported."""
    assert process.stdout is not None
    while line := await process.stdout.readline():
        if not line.endswith(b"\n"):
            break
        for event_id, stream, version in json.loads(line)["events"]:
            reported[uuid.UUID(event_id)] = (stream, version)
        first.set()


async def _wait_for_disconnect(connection: asyncpg.Connection) -> None:
    """Until the killed child's server sessions have ended (their open transactions rolled back)."""
    async with asyncio.timeout(10):
        while await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND backend_type = 'client backend'"
            " AND pid <> pg_backend_pid()"
        ):
            await asyncio.sleep(0.05)


async def _assert_consistent(connection: asyncpg.Connection, reported: Reported) -> int:
    """Every reported event is stored where it was reported; every stream's versions run 1..n and its
    ``streams`` row says n. Returns the number of stored events."""
    stored = {
        r["event_id"]: (r["stream_id"], r["stream_version"])
        for r in await connection.fetch("SELECT event_id, stream_id, stream_version FROM events")
    }
    missing = set(reported) - set(stored)
    assert not missing, f"{len(missing)} reported events are not in the log"
    assert all(stored[event_id] == place for event_id, place in reported.items())

    streams = await connection.fetch(
        "SELECT coalesce(e.stream_id, s.stream_id) AS stream_id, e.events, e.first, e.last, s.version"
        " FROM (SELECT stream_id, count(*) AS events, min(stream_version) AS first,"
        "       max(stream_version) AS last FROM events GROUP BY stream_id) e"
        " FULL JOIN streams s ON s.stream_id = e.stream_id"
    )
    for row in streams:
        assert (row["first"], row["last"], row["version"]) == (1, row["events"], row["events"]), dict(row)
    return len(stored)


async def test_killed_writer_leaves_a_consistent_log_and_a_restart_carries_on(empty_database: str) -> None:
    """SIGKILL a process appending under load: everything it reported as committed is stored, no stream
    has a gap or a stale version row, a fresh store reads it all, and a restarted writer succeeds."""
    reported: Reported = {}
    first = asyncio.Event()
    writer = await _start_writer(empty_database)
    reader = asyncio.create_task(_read_reports(writer, reported, first))
    try:
        async with asyncio.timeout(30):
            await first.wait()
        await asyncio.sleep(LOAD_SECONDS)
    finally:
        writer.send_signal(signal.SIGKILL)
        await writer.wait()
        await reader
    assert writer.returncode == -signal.SIGKILL
    assert len(reported) > 20, "the writer was killed before it got going"

    connection = await database.connect(empty_database)
    try:
        await _wait_for_disconnect(connection)
        stored = await _assert_consistent(connection, reported)
        async with open_store(empty_database, max_size=2) as (_pool, store):
            everything = await store.read_all(LOG_START, limit=stored + 1)
        assert len(everything) == stored

        restarted = await _start_writer(empty_database, "--appends", "40")
        more: Reported = {}
        assert restarted.stderr is not None
        async with asyncio.timeout(30):
            _, stderr, _ = await asyncio.gather(
                _read_reports(restarted, more, asyncio.Event()), restarted.stderr.read(), restarted.wait()
            )
        assert restarted.returncode == 0, stderr.decode()
        assert more and not set(more) & set(reported)
        assert await _assert_consistent(connection, reported | more) == stored + len(more)
    finally:
        await connection.close()
