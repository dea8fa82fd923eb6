"""Wake-ups for log readers: one LISTEN connection per process, fanned out to every local tailer.

Committed appends are announced on ``tokenledger_events`` with ``"<tx_id>:<position>"``, the newest
cursor, by the appending process after the commit (``services.eventstore.commit_notices``: one
NOTIFY for the appends committed while the previous one was sent). A waiter keeps the
highest cursor it was told about, so a tailer that finds nothing yet (an older transaction is still
open) knows a committed event is pending and retries soon rather than sleeping until the next poll.
Notifications are only a latency aid: tailers also poll, so a lost notification or a dropped LISTEN
connection delays events but never loses them.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from events import LogCursor

CHANNEL = "tokenledger_events"
READ_MODELS_CHANNEL = "tokenledger_read_models"
"""A projection runner committed a batch; the payload is its process's runners' checkpoints."""
_log = logging.getLogger(__name__)


class Waiter:
    """One reader's view of notifications."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.notified = LogCursor(0, 0)

    def wake(self, cursor: LogCursor | None) -> None:
        if cursor is not None and cursor > self.notified:
            self.notified = cursor
        self._event.set()

    async def wait(self, at_most: float) -> None:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that
        # arrives as the event is set, and a reader stopped at that moment then waited for ever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(at_most):
                await self._event.wait()
        self._event.clear()


def parse_payload(payload: str) -> LogCursor | None:
    tx, _, position = payload.partition(":")
    try:
        return LogCursor(int(tx), int(position))
    except ValueError:
        return None


class LogNotifications:
    """Holds the LISTEN connection (reconnecting with back-off) and the local waiters."""

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]]) -> None:
        self._connect = connect
        self._waiters: set[Waiter] = set()
        self._task: asyncio.Task[None] | None = None
        self._connection: asyncpg.Connection | None = None
        self._read_models: list[Callable[[str], None]] = []

    def on_read_models(self, callback: Callable[[str], None]) -> None:
        """Calls ``callback`` with the payload of each notification of ``READ_MODELS_CHANNEL`` (and
        with ``""`` on reconnecting: what moved meanwhile is not known)."""
        self._read_models.append(callback)

    def waiter(self) -> Waiter:
        waiter = Waiter()
        self._waiters.add(waiter)
        return waiter

    def forget(self, waiter: Waiter) -> None:
        self._waiters.discard(waiter)

    def wake_all(self, cursor: LogCursor | None = None) -> None:
        """Also called by in-process writers right after a commit, to skip the round trip."""
        for waiter in self._waiters:
            waiter.wake(cursor)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="log-notifications")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._connection is not None and not self._connection.is_closed():
            await self._connection.close()

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.wake_all(parse_payload(payload))

    def _on_read_models(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._tell_read_models(payload)

    def _tell_read_models(self, payload: str) -> None:
        for callback in self._read_models:
            callback(payload)

    async def _listen_forever(self) -> None:
        delay = 0.1
        while True:
            try:
                self._connection = await self._connect()
                lost = asyncio.Event()
                self._connection.add_termination_listener(lambda _c, lost=lost: lost.set())
                await self._connection.add_listener(CHANNEL, self._on_notify)
                await self._connection.add_listener(READ_MODELS_CHANNEL, self._on_read_models)
                delay = 0.1
                self.wake_all()  # anything committed while we were not listening
                self._tell_read_models("")
                await lost.wait()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                _log.warning("LISTEN connection failed (%s); retrying in %.1fs", error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
