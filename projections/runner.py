"""One projection's runner: holds its lock, builds its version when needed, follows the log.

``ProjectionRunner`` holds a dedicated connection with a session advisory lock on its projection, so
one runner per projection is active across all processes; the others retry the lock every
``lock_retry_seconds``. The active runner makes sure the live version is its code's version (else it
asks ``StartupBuilds`` to build that version from the start of the log and switch to it), then
follows the log from the checkpoint: each batch is one transaction that locks the checkpoint row,
runs the batch's statements and moves the checkpoint to the batch's last cursor (a batch without
statements for this projection only moves the checkpoint, in one conditional UPDATE). A poison event (see
``projections.executor``) stops that projection only: the events before it are committed, the
checkpoint stays just before it, and the failure is recorded with the event's position and type.

Its checkpoint is a ``follower.waiters.CursorWaiters``: ``wait_for`` is read-your-writes without a
query while the runner is active in this process.
"""

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import asyncpg
import msgspec

from events import LogCursor, RecordedEvent
from follower.waiters import CursorWaiters
from follower.worker import BackgroundTask, Backoff, keep_running, take_session_lock
from projections import bookkeeping
from projections.base import LogSource, Projection, Statement
from projections.build import PoisonEvent
from projections.executor import describe, execute, is_poison
from projections.known import CommittedCheckpoint
from projections.naming import LOCK_CLASS_RUNNER, check_identifier, lock_key, renderer

_log = logging.getLogger(__name__)

Connect = Callable[[], Awaitable[Any]]


class RunnerState(enum.StrEnum):
    STARTING = "starting"  # connecting, or about to take the lock
    STANDBY = "standby"  # another runner (here or in another process) holds the lock
    BUILDING = "building"  # building this code's version from the start of the log
    RUNNING = "running"  # following the log
    FAILED = "failed"  # stopped by a poison event; ``start`` tries that event again
    SUPERSEDED = "superseded"  # the live version is newer than this code's: this runner stays idle
    STOPPED = "stopped"


class FailedEvent(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    tx_id: int
    event_type: str | None
    event_id: str | None
    error: str


class Connections:
    """Dedicated connections: from ``connect`` when given, else held out of the pool."""

    def __init__(self, pool: asyncpg.Pool, connect: Connect | None) -> None:
        self._pool = pool
        self._connect = connect

    async def open(self) -> Any:
        if self._connect is not None:
            return await self._connect()
        return await self._pool.acquire()

    async def close(self, connection: Any) -> None:
        try:
            if self._connect is not None:
                await asyncio.wait_for(connection.close(), 5)
            else:  # the pool does not reset sessions on release (services.database): unlock here
                await asyncio.wait_for(connection.execute("SELECT pg_advisory_unlock_all()"), 5)
                await asyncio.wait_for(self._pool.release(connection), 5)
        except (Exception, asyncio.CancelledError):
            connection.terminate()


class StartupBuilds(Protocol):
    """What a runner asks of the process's builds (``projections.builds.Builds``)."""

    def settled(self, name: str) -> None:
        """The runner no longer needs, or has asked for, its start-up build."""

    async def build(self, runner: "ProjectionRunner", connection: Any) -> None:
        """Builds the runner's version and makes it live (the runner holds its lock)."""


class _Outcome(enum.Enum):
    APPLIED = 1
    RESYNC = 2  # the checkpoint row moved (a rebuild switched tables): follow from the new place
    REBUILD = 3  # the live version changed under the runner: check it again
    FAILED = 4


class ProjectionRunner:
    """Keeps one projection up to date with the log (see the module docstring)."""

    def __init__(
        self,
        projection: Projection,
        source: LogSource,
        connections: Connections,
        builds: StartupBuilds,
        on_progress: Callable[[], None],
        *,
        lock_retry_seconds: float,
    ) -> None:
        check_identifier(projection.name)
        self.projection = projection
        self.name = projection.name
        self._source = source
        self._connections = connections
        self._builds = builds
        self._on_progress = on_progress
        self._lock_retry = lock_retry_seconds
        self._key = lock_key(projection.name)
        self._state = RunnerState.STOPPED
        self._failed_event: FailedEvent | None = None
        self._checkpoint = CursorWaiters()
        self._generation = -1
        self._render: Callable[[str], str] = renderer({})
        self._task = BackgroundTask(f"projection-{self.name}", self._main)

    # -- what callers see ------------------------------------------------------------------------

    @property
    def state(self) -> RunnerState:
        return self._state

    @property
    def failed_event(self) -> FailedEvent | None:
        return self._failed_event

    @property
    def active(self) -> bool:
        """Holds the lock in this process (building or following the log)."""
        return self._state in (RunnerState.BUILDING, RunnerState.RUNNING)

    @property
    def committed(self) -> CommittedCheckpoint | None:
        """The checkpoint this runner has committed, while it follows the log (what the other
        processes are told after each batch)."""
        if self._state is not RunnerState.RUNNING:
            return None
        return CommittedCheckpoint(
            self.name, self.projection.version, self._generation, self._checkpoint.reached
        )

    async def wait_for(self, cursor: LogCursor, timeout: float) -> bool:  # noqa: ASYNC109
        """Waits until this runner has committed everything up to ``cursor``; False on timeout or
        when the projection fails or stops."""
        return await self._checkpoint.wait_for(cursor, timeout)

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task.running:
            return
        self._state = RunnerState.STARTING
        self._failed_event = None
        self._checkpoint.open()
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()
        if self._state is not RunnerState.FAILED:
            self._state = RunnerState.STOPPED
        self._checkpoint.close()
        self._on_progress()

    async def _main(self) -> None:
        await keep_running(
            self._connected_session,
            what=f"projection {self.name}",
            backoff=Backoff(0.2, 10.0),
            on_error=lambda _error: self._restarting(),
        )

    def _restarting(self) -> None:
        self._state = RunnerState.STARTING

    async def _connected_session(self) -> bool:
        connection = None
        try:
            connection = await self._connections.open()
            return await self._session(connection)
        finally:
            self._builds.settled(self.name)
            if connection is not None:
                await self._connections.close(connection)

    async def _session(self, connection: Any) -> bool:
        """One connection's life: take the lock, make sure the live version is ours, follow the log.
        Returns True when the projection failed (the runner stops), False to start a new session."""
        self._state = RunnerState.STANDBY
        await take_session_lock(
            connection,
            LOCK_CLASS_RUNNER,
            self._key,
            what=f"projection {self.name}",
            retry_seconds=self._lock_retry,
            while_waiting=lambda: self._builds.settled(self.name),
        )
        self._state = RunnerState.STARTING
        while True:
            live = await bookkeeping.load(connection, self.name)
            if live is not None and live.version > self.projection.version:
                _log.warning(
                    "projection %s: the live version %d is newer than this code's %d; standing by",
                    self.name,
                    live.version,
                    self.projection.version,
                )
                self._state = RunnerState.SUPERSEDED
                self._builds.settled(self.name)
                await connection.execute("SELECT pg_advisory_unlock($1, $2)", LOCK_CLASS_RUNNER, self._key)
                await asyncio.sleep(self._lock_retry * 10)
                return False
            if bookkeeping.needs_build(live, self.projection):
                self._state = RunnerState.BUILDING
                try:
                    await self._builds.build(self, connection)
                except PoisonEvent as poison:
                    await bookkeeping.record_failure(
                        connection, self.name, self.projection.version, poison.event, describe(poison.error)
                    )
                    self._failed(poison.event, poison.error)
                    return True
                continue
            break
        assert live is not None  # needs_build is true for None
        self._builds.settled(self.name)
        await bookkeeping.clear_failure(connection, self.name)
        self._adopt(live)
        self._state = RunnerState.RUNNING
        self._wake()
        return await self._follow(connection)

    def _adopt(self, live: bookkeeping.LiveState) -> None:
        self._generation = live.generation
        self._render = renderer(live.tables)
        self._checkpoint.advance(live.cursor)

    def _wake(self) -> None:
        self._on_progress()

    # -- following the log -----------------------------------------------------------------------

    async def _follow(self, connection: Any) -> bool:
        while True:
            batches = self._source.batches(self._checkpoint.reached)
            try:
                async for batch in batches:
                    outcome = await self._apply(connection, batch)
                    if outcome is _Outcome.FAILED:
                        return True
                    if outcome is _Outcome.REBUILD:
                        return False
                    if outcome is _Outcome.RESYNC:
                        break
            finally:
                close = getattr(batches, "aclose", None)
                if close is not None:
                    await close()

    async def _begin_batch(self, connection: Any) -> _Outcome | None:
        """Locks the checkpoint row; an outcome when the batch must not be applied."""
        live = await bookkeeping.load(connection, self.name, for_update=True)
        if live is None or live.version != self.projection.version:
            return _Outcome.REBUILD
        if live.generation != self._generation or live.cursor != self._checkpoint.reached:
            _log.info("projection %s: now at generation %d, %s", self.name, live.generation, live.cursor)
            self._adopt(live)
            return _Outcome.RESYNC
        return None

    async def _apply(self, connection: Any, batch: Sequence[RecordedEvent]) -> _Outcome:
        per_event: list[Sequence[Statement]] = []
        poison: BaseException | None = None
        for event in batch:
            try:
                per_event.append(self.projection.apply(event))
            except Exception as error:
                poison = error
                break
        good = batch[: len(per_event)]
        statements = [s for event_statements in per_event for s in event_statements]
        if good and not statements and poison is None and await self._move_cursor(connection, good[-1]):
            return _Outcome.APPLIED
        try:
            async with connection.transaction():
                early = await self._begin_batch(connection)
                if early is not None:
                    return early
                if statements:
                    await execute(connection, statements, self._render)
                if good:
                    await bookkeeping.save_cursor(connection, self.name, good[-1].cursor)
                if poison is not None:
                    await self._record_failure(connection, batch[len(good)], poison)
        except Exception as error:
            if not is_poison(error):
                raise
            return await self._isolate(connection, batch, per_event, poison)
        if good:
            self._advance(good[-1].cursor)
        if poison is not None:
            self._failed(batch[len(good)], poison)
            return _Outcome.FAILED
        return _Outcome.APPLIED

    async def _move_cursor(self, connection: Any, last: RecordedEvent) -> bool:
        """A batch that changes no row of this projection (most events concern other projections)
        moves the checkpoint in one statement rather than a transaction of four; False when the live
        state moved meanwhile (the caller's transaction then finds out how)."""
        version, reached = self.projection.version, self._checkpoint.reached
        if not await bookkeeping.move_cursor(
            connection, self.name, version, self._generation, reached, last.cursor
        ):
            return False
        self._advance(last.cursor)
        return True

    async def _isolate(
        self,
        connection: Any,
        batch: Sequence[RecordedEvent],
        per_event: Sequence[Sequence[Statement]],
        apply_error: BaseException | None,
    ) -> _Outcome:
        """The batch failed in SQL: apply it event by event to commit what precedes the poison."""
        applied: RecordedEvent | None = None
        culprit: tuple[RecordedEvent, BaseException] | None = None
        async with connection.transaction():
            early = await self._begin_batch(connection)
            if early is not None:
                return early
            for event, statements in zip(batch, per_event, strict=False):
                try:
                    async with connection.transaction():
                        await execute(connection, statements, self._render)
                except Exception as error:
                    if not is_poison(error):
                        raise
                    culprit = (event, error)
                    break
                applied = event
            if culprit is None and apply_error is not None:
                culprit = (batch[len(per_event)], apply_error)
            if applied is not None:
                await bookkeeping.save_cursor(connection, self.name, applied.cursor)
            if culprit is not None:
                await self._record_failure(connection, *culprit)
        if applied is not None:
            self._advance(applied.cursor)
        if culprit is not None:
            self._failed(*culprit)
            return _Outcome.FAILED
        return _Outcome.APPLIED

    async def _record_failure(self, connection: Any, event: RecordedEvent, error: BaseException) -> None:
        await bookkeeping.record_failure(
            connection, self.name, self.projection.version, event, describe(error)
        )

    def _advance(self, cursor: LogCursor) -> None:
        self._checkpoint.advance(cursor)
        self._wake()

    def _failed(self, event: RecordedEvent, error: BaseException) -> None:
        self._state = RunnerState.FAILED
        reason = describe(error)
        self._failed_event = FailedEvent(
            position=event.global_position,
            tx_id=event.tx_id,
            event_type=event.type,
            event_id=str(event.event_id),
            error=reason,
        )
        self._checkpoint.close()
        _log.error(
            "projection %s stopped at event %d (%s): %s",
            self.name,
            event.global_position,
            event.type,
            reason,
        )
        self._wake()
