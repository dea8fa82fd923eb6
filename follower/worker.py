"""One background worker's life: start, stop, sessions retried with back-off, periodic rounds, and the
session advisory lock of followers that must be active once across processes.

``BackgroundTask`` owns one named asyncio task: ``start`` is a no-op while it runs, ``stop`` cancels it
and waits for it. What the task does is one of two shapes:

* ``keep_running(session, ...)``: a follower's sessions (open a connection, take the lock, follow the
  log). A session that raises is logged and started again after a back-off that doubles up to a
  ceiling; the session calls ``Backoff.reset`` once it is under way. A session that returns True ends
  the task (a projection stopped by a poison event); False starts a new one after the first delay.
* ``periodically(round, ...)``: housekeeping (sealing checkpoints, flushing usage, purging expired
  idempotency claims) every ``interval`` seconds, or sooner when its ``wake`` event is set; a round
  that raises is logged and the next one runs at the next tick.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

_log = logging.getLogger(__name__)


def describe(error: BaseException) -> str:
    """``Type: message`` of an error (each one of a group), bounded for a log line."""
    if isinstance(error, BaseExceptionGroup):
        text = "; ".join(describe(inner) for inner in error.exceptions)
    else:
        text = f"{type(error).__name__}: {error}"
    return text if len(text) <= 2000 else text[:2000] + "..."


class Backoff:
    """Delays that double from ``first`` up to ``last``; ``reset`` starts again from ``first``."""

    def __init__(self, first: float = 0.2, last: float = 10.0) -> None:
        self._first = first
        self._last = last
        self.delay = first

    def reset(self) -> None:
        self.delay = self._first

    async def sleep(self) -> None:
        delay = self.delay
        self.delay = min(delay * 2, self._last)
        await asyncio.sleep(delay)


class BackgroundTask:
    """One named task, started and stopped by its owner's ``start``/``stop``."""

    def __init__(self, name: str, body: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.name = name
        self._body = body
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self._task = asyncio.create_task(self._body(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def keep_running(
    session: Callable[[], Awaitable[bool]],
    *,
    what: str,
    backoff: Backoff,
    on_error: Callable[[BaseException], None] | None = None,
) -> None:
    """Runs ``session`` until it returns True (see the module docstring)."""
    while True:
        try:
            if await session():
                return
            backoff.reset()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            _log.warning("%s: %s; retrying in %.1fs", what, describe(error), backoff.delay)
            if on_error is not None:
                on_error(error)
        await backoff.sleep()


async def periodically(
    round_: Callable[[], Awaitable[object]],
    *,
    what: str,
    interval: float,
    wake: asyncio.Event | None = None,
    at_start: bool = False,
) -> None:
    """Runs ``round_`` every ``interval`` seconds (first at once when ``at_start``), or as soon as
    ``wake`` is set; a round that raises is logged and does not end the loop."""
    if not at_start:
        await _pause(interval, wake)
    while True:
        try:
            await round_()
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("%s failed; trying again in %.0f s", what, interval)
        await _pause(interval, wake)


async def _pause(interval: float, wake: asyncio.Event | None) -> None:
    if wake is None:
        await asyncio.sleep(interval)
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(interval):
            await wake.wait()
    wake.clear()


class PeriodicWorker:
    """A housekeeping worker (``start``/``stop``) running ``round_`` periodically, first at start."""

    def __init__(self, name: str, round_: Callable[[], Awaitable[object]], *, interval: float) -> None:
        self.interval = interval
        self._task = BackgroundTask(
            name, lambda: periodically(round_, what=name, interval=interval, at_start=True)
        )

    async def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()


async def take_session_lock(
    connection: Any,
    lock_class: int,
    key: int,
    *,
    what: str,
    retry_seconds: float,
    while_waiting: Callable[[], None] | None = None,
) -> None:
    """Waits until this connection holds the session advisory lock ``(lock_class, key)``: it lasts as
    long as the connection, so one follower of that name is active across processes. Says so in
    the log: ``<what>: standing by`` when another process holds it, ``<what>: active`` once taken
    (a lost connection starts a new session, which says it again)."""
    standing_by = False
    while not await connection.fetchval("SELECT pg_try_advisory_lock($1, $2)", lock_class, key):
        if not standing_by:
            standing_by = True
            _log.info("%s: standing by (another process is active)", what)
        if while_waiting is not None:
            while_waiting()
        await asyncio.sleep(retry_seconds)
    _log.info("%s: active", what)
