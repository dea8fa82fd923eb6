"""The NOTIFY that announces appends, sent by the store after the commit (``CommitNotices``): a
listener hears the newest cursor of concurrent appends, with fewer notifications than appends; the
append itself no longer notifies; a NOTIFY that fails never fails an append already committed."""

import asyncio

import asyncpg
import pytest

from events import LogCursor
from services import database
from services.eventstore import PostgresEventStore
from services.eventstore.commit_notices import CommitNotices, ProgressNotices
from services.eventstore.notifications import CHANNEL, LogNotifications
from services.ports import StreamState
from tests.integration.eventstore_helpers import events, stream_name


async def _listening(dsn: str, heard: list[str]) -> asyncpg.Connection:
    listener = await database.connect(dsn)
    await listener.add_listener(CHANNEL, lambda *arguments: heard.append(str(arguments[-1])))
    return listener


async def test_concurrent_appends_are_announced_by_the_newest_cursor(dsn: str) -> None:
    heard: list[str] = []
    listener = await _listening(dsn, heard)
    pool = await database.create_pool(dsn, min_size=1, max_size=16)
    try:
        store = PostgresEventStore(pool)
        results = await asyncio.gather(
            *(store.append(stream_name(), events(1), StreamState.NO_STREAM) for _ in range(64))
        )
        assert store.notices is not None
        await store.notices.flush()
        newest = max(result.cursor for result in results)
        async with asyncio.timeout(5):
            while f"{newest.tx_id}:{newest.position}" not in heard:
                await asyncio.sleep(0.01)
        assert 1 <= store.notices.sent <= len(results)
        announced = [tuple(map(int, payload.split(":"))) for payload in heard]
        assert max(announced) == newest
    finally:
        await pool.close()
        await listener.close()


async def test_tl_append_itself_does_not_notify(dsn: str) -> None:
    heard: list[str] = []
    listener = await _listening(dsn, heard)
    pool = await database.create_pool(dsn, min_size=1, max_size=2)
    try:
        await PostgresEventStore(pool, announce=False).append(stream_name(), events(1), StreamState.NO_STREAM)
        await asyncio.sleep(0.3)
        assert heard == []
    finally:
        await pool.close()
        await listener.close()


async def test_a_failed_notify_is_logged_never_raised(dsn: str, caplog: pytest.LogCaptureFixture) -> None:
    pool = await database.create_pool(dsn, min_size=1, max_size=1)
    await pool.close()  # every NOTIFY over it fails
    notices = CommitNotices(pool)
    notices.committed(LogCursor(5, 7))
    await notices.flush()
    assert notices.sent == 0
    assert "readers will poll" in caplog.text


async def test_a_runners_progress_wakes_the_other_processes(dsn: str) -> None:
    """``ProgressNotices`` (the process running the projections) reaches ``on_read_models`` of every
    ``LogNotifications`` with its payload (each other process's barrier learns the checkpoints)."""
    notifications = LogNotifications(lambda: database.connect(dsn))
    woken = asyncio.Event()
    payloads: list[str] = []

    def told(payload: str) -> None:
        payloads.append(payload)
        woken.set()

    notifications.on_read_models(told)
    await notifications.start()
    pool = await database.create_pool(dsn, min_size=1, max_size=2)
    try:
        async with asyncio.timeout(5):
            await woken.wait()  # once on connecting: what moved while it was not listening
            woken.clear()
            ProgressNotices(pool).moved(lambda: "accounts:1:0:7:9")
            await woken.wait()
        assert payloads == ["", "accounts:1:0:7:9"]
    finally:
        await pool.close()
        await notifications.stop()
