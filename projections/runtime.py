"""The projection runtime: one runner per projection, builds and rebuilds, status, read-your-writes.

Wiring (the composition root does this; this package never imports ``services``)::

    source = CombinedLogSource(LogTail(store, notifications.waiter()), store)
    projections = Projections(pool, source, ALL_PROJECTIONS, connect=lambda: database.connect(dsn))
    await projections.start()          # returns at once; runners build / catch up in the background
    ...
    await projections.wait_until_current(timeout=2.0)   # before answering a query
    ...
    await projections.stop()

Tables. A projection's tables are ``rm_<table>_v<version>`` (``_r<k>`` after the k-th rebuild of that
version) and queries read the views ``rm_<table>``. The checkpoint row (``projections.bookkeeping``)
records the live version, generation, tables and cursor.

Runners. ``ProjectionRunner`` holds a dedicated connection with a session advisory lock on its
projection, so one runner per projection is active across all processes; the others retry the lock
every ``lock_retry_seconds``. The active runner makes sure the live version is its code's version
(else it builds that version from the start of the log and switches to it), then follows the log
from the checkpoint: each batch is one transaction that locks the checkpoint row, runs the batch's
statements and moves the checkpoint to the batch's last cursor. A poison event (see
``projections.executor``) stops that projection only: the events before it are committed, the
checkpoint stays just before it, and the failure is recorded with the event's position and type.

At start-up the runners that need a build are built together, from one scan of the log.
"""

import asyncio
import contextlib
import enum
import heapq
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import asyncpg
import msgspec

from events import LogCursor, RecordedEvent
from events.envelope import LOG_START
from projections import bookkeeping
from projections.base import LogSource, Projection, Statement
from projections.build import BUILD_BATCH_SIZE, Builder, BuildTarget, PoisonEvent, RebuildConflict
from projections.executor import describe, execute, is_poison
from projections.naming import (
    LOCK_CLASS_BUILD,
    LOCK_CLASS_RUNNER,
    check_identifier,
    lock_key,
    renderer,
)

_log = logging.getLogger(__name__)

Connect = Callable[[], Awaitable[Any]]


class RunnerState(enum.StrEnum):
    STARTING = "starting"  # connecting, or about to take the lock
    STANDBY = "standby"  # another runner (here or in another process) holds the lock
    BUILDING = "building"  # building this code's version from the start of the log
    RUNNING = "running"  # following the log
    FAILED = "failed"  # stopped by a poison event; ``restart`` tries again
    SUPERSEDED = "superseded"  # the live version is newer than this code's: this runner stays idle
    STOPPED = "stopped"


class FailedEvent(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    tx_id: int
    event_type: str | None
    event_id: str | None
    error: str


class ProjectionStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: int
    """The version of this code's projection."""
    live_version: int | None
    """The version the views serve (None before the first build)."""
    checkpoint: LogCursor | None
    position: int | None
    lag_events: int
    """Events in the log after the checkpoint."""
    lag_seconds: float
    """Age of the oldest event after the checkpoint (0 when there is none)."""
    state: str
    error: str | None
    failed_event: FailedEvent | None


class ProjectionNotLive(RuntimeError):
    """A rebuild needs the projection to be live at this code's version."""


class _Connections:
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
        connections: _Connections,
        hub: "Projections",
        *,
        lock_retry_seconds: float,
    ) -> None:
        check_identifier(projection.name)
        self.projection = projection
        self.name = projection.name
        self._source = source
        self._connections = connections
        self._hub = hub
        self._lock_retry = lock_retry_seconds
        self._key = lock_key(projection.name)
        self._state = RunnerState.STOPPED
        self._error: str | None = None
        self._failed_event: FailedEvent | None = None
        self._checkpoint = LOG_START
        self._generation = -1
        self._render: Callable[[str], str] = renderer({})
        self._waiters: list[tuple[LogCursor, int, asyncio.Future[bool]]] = []
        self._waiter_count = 0
        self._task: asyncio.Task[None] | None = None

    # -- what callers see ------------------------------------------------------------------------

    @property
    def checkpoint(self) -> LogCursor:
        """The cursor this runner's tables are committed up to (as far as this process knows)."""
        return self._checkpoint

    @property
    def state(self) -> RunnerState:
        return self._state

    @property
    def error(self) -> str | None:
        return self._error

    @property
    def failed_event(self) -> FailedEvent | None:
        return self._failed_event

    @property
    def active(self) -> bool:
        """Holds the lock in this process (building or following the log)."""
        return self._state in (RunnerState.BUILDING, RunnerState.RUNNING)

    async def wait_for(self, cursor: LogCursor, timeout: float) -> bool:  # noqa: ASYNC109
        """Waits until this runner has committed everything up to ``cursor``; False on timeout or
        when the projection fails or stops. Waiters sit in a heap by cursor and a commit resolves
        only those it reaches: with thousands of commands waiting, waking every waiter on every
        batch cost more than the batches."""
        if self._checkpoint >= cursor:
            return True
        if self._state in (RunnerState.FAILED, RunnerState.STOPPED):
            return False
        reached: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiter_count += 1
        heapq.heappush(self._waiters, (cursor, self._waiter_count, reached))
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(reached)
        except TimeoutError:
            return False

    def _resolve_waiters(self) -> None:
        ended = self._state in (RunnerState.FAILED, RunnerState.STOPPED)
        while self._waiters and (ended or self._waiters[0][0] <= self._checkpoint):
            cursor, _, reached = heapq.heappop(self._waiters)
            if not reached.done():
                reached.set_result(cursor <= self._checkpoint)

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._state = RunnerState.STARTING
        self._error = None
        self._failed_event = None
        self._task = asyncio.create_task(self._main(), name=f"projection-{self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._state is not RunnerState.FAILED:
            self._state = RunnerState.STOPPED
        self._wake()

    async def _main(self) -> None:
        delay = 0.2
        while True:
            connection = None
            try:
                connection = await self._connections.open()
                if await self._session(connection):
                    return  # failed: stays stopped until restarted
                delay = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as error:
                _log.warning("projection %s: %s; retrying in %.1fs", self.name, describe(error), delay)
                self._state = RunnerState.STARTING
            finally:
                self._hub._startup_settled(self.name)
                if connection is not None:
                    await self._connections.close(connection)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _session(self, connection: Any) -> bool:
        """One connection's life: take the lock, make sure the live version is ours, follow the log.
        Returns True when the projection failed (the runner stops), False to start a new session."""
        self._state = RunnerState.STANDBY
        while not await connection.fetchval(
            "SELECT pg_try_advisory_lock($1, $2)", LOCK_CLASS_RUNNER, self._key
        ):
            self._hub._startup_settled(self.name)
            await asyncio.sleep(self._lock_retry)
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
                self._hub._startup_settled(self.name)
                await connection.execute("SELECT pg_advisory_unlock($1, $2)", LOCK_CLASS_RUNNER, self._key)
                await asyncio.sleep(self._lock_retry * 10)
                return False
            if bookkeeping.needs_build(live, self.projection):
                self._state = RunnerState.BUILDING
                try:
                    await self._hub._build(self, connection)
                except PoisonEvent as poison:
                    await bookkeeping.record_failure(
                        connection, self.name, self.projection.version, poison.event, describe(poison.error)
                    )
                    self._failed(poison.event, poison.error)
                    return True
                continue
            break
        assert live is not None  # needs_build is true for None
        self._hub._startup_settled(self.name)
        await bookkeeping.clear_failure(connection, self.name)
        self._adopt(live)
        self._state = RunnerState.RUNNING
        self._wake()
        return await self._follow(connection)

    def _adopt(self, live: bookkeeping.LiveState) -> None:
        self._generation = live.generation
        self._render = renderer(live.tables)
        self._checkpoint = live.cursor

    def _wake(self) -> None:
        self._resolve_waiters()
        self._hub._wake()

    # -- following the log -----------------------------------------------------------------------

    async def _follow(self, connection: Any) -> bool:
        while True:
            batches = self._source.batches(self._checkpoint)
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
        if live.generation != self._generation or live.cursor != self._checkpoint:
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
        try:
            async with connection.transaction():
                early = await self._begin_batch(connection)
                if early is not None:
                    return early
                statements = [s for event_statements in per_event for s in event_statements]
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
        self._checkpoint = cursor
        self._wake()

    def _failed(self, event: RecordedEvent, error: BaseException) -> None:
        self._state = RunnerState.FAILED
        self._error = describe(error)
        self._failed_event = FailedEvent(
            position=event.global_position,
            tx_id=event.tx_id,
            event_type=event.type,
            event_id=str(event.event_id),
            error=self._error,
        )
        _log.error(
            "projection %s stopped at event %d (%s): %s",
            self.name,
            event.global_position,
            event.type,
            self._error,
        )
        self._wake()


_BARRIER_SQL = """
WITH horizon AS (
    SELECT coalesce($1::bigint, pg_snapshot_xmax(pg_current_snapshot())::text::bigint) AS xid
)
SELECT horizon.xid AS horizon,
       (SELECT count(*) FROM unnest($2::text[]) AS n (name)
          LEFT JOIN projection_checkpoints c ON c.name = n.name
         WHERE c.name IS NULL
            OR EXISTS (SELECT 1 FROM events e
                        WHERE (e.tx_id, e.global_position) > (c.tx_id::text::xid8, c.position)
                          AND e.tx_id < horizon.xid::text::xid8)) AS behind,
       (SELECT count(*) FROM projection_failures f WHERE f.name = ANY ($2::text[])) AS failed
  FROM horizon
"""

_REACHED_SQL = """
SELECT (SELECT count(*) FROM unnest($1::text[]) AS n (name)
          LEFT JOIN projection_checkpoints c ON c.name = n.name
         WHERE c.name IS NULL OR (c.tx_id, c.position) < ($2::bigint, $3::bigint)) AS behind,
       (SELECT count(*) FROM projection_failures f WHERE f.name = ANY ($1::text[])) AS failed
"""

_STATUS_SQL = """
SELECT n.name, c.version, c.tx_id, c.position, l.events, l.seconds
  FROM unnest($1::text[]) AS n (name)
  LEFT JOIN projection_checkpoints c ON c.name = n.name
  CROSS JOIN LATERAL (
        SELECT count(*) AS events,
               coalesce(extract(epoch FROM clock_timestamp() - min(e.recorded_at)), 0)::float8 AS seconds
          FROM events e
         WHERE (e.tx_id, e.global_position)
               > (coalesce(c.tx_id, 0)::text::xid8, coalesce(c.position, 0))) AS l
"""


class Projections:
    """All runners of one process, and what the rest of the service asks of them.

    ``pool`` serves the short queries (barrier, status); each runner and each build uses a dedicated
    connection from ``connect`` when given (recommended: advisory locks and long builds should not
    hold pool connections), else one held out of ``pool``.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        source: LogSource,
        projections: Sequence[Projection],
        *,
        connect: Connect | None = None,
        lock_retry_seconds: float = 3.0,
        build_batch_size: int = BUILD_BATCH_SIZE,
    ) -> None:
        names = [p.name for p in projections]
        tables = [t for p in projections for t in p.tables]
        if len(set(names)) != len(names) or len(set(tables)) != len(tables):
            raise ValueError("projection names and their tables must be unique")
        self._pool = pool
        self._source = source
        self._connections = _Connections(pool, connect)
        self._builder = Builder(source, batch_size=build_batch_size)
        self._runners = {
            p.name: ProjectionRunner(
                p, source, self._connections, self, lock_retry_seconds=lock_retry_seconds
            )
            for p in projections
        }
        self._progress = asyncio.Event()
        self._startup_waiting: set[str] = set()
        self._build_requests: list[tuple[ProjectionRunner, Any, asyncio.Future[None]]] = []
        self._build_tasks: set[asyncio.Task[None]] = set()

    @property
    def names(self) -> list[str]:
        return list(self._runners)

    def runner(self, name: str) -> ProjectionRunner:
        return self._runners[name]

    async def prepare(self) -> None:
        """Creates the bookkeeping tables if needed: enough for a process that runs no runner
        itself but waits on the checkpoints that another process advances."""
        connection = await self._connections.open()
        try:
            await bookkeeping.ensure_schema(connection)
        finally:
            await self._connections.close(connection)

    async def start(self) -> None:
        """Creates the bookkeeping tables and starts every runner; returns without waiting for builds
        or catching up (``wait_until_current`` does that)."""
        await self.prepare()
        self._startup_waiting = set(self._runners)
        for runner in self._runners.values():
            runner.start()

    async def stop(self) -> None:
        for task in list(self._build_tasks):
            task.cancel()
        await asyncio.gather(*(runner.stop() for runner in self._runners.values()))
        for task in list(self._build_tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def restart(self, name: str) -> None:
        """Starts a failed or stopped runner again (it retries the event that stopped it)."""
        self._runners[name].start()

    # -- read-your-writes ------------------------------------------------------------------------

    async def wait_until_current(
        self,
        timeout: float = 5.0,  # noqa: ASYNC109 (False on timeout is part of the answer)
        names: Iterable[str] | None = None,
    ) -> bool:
        """Waits until the projections (all of this process's, or ``names``) hold every event
        committed before the call; False on timeout, or as soon as one that is behind has failed.

        The exact condition. The first poll's snapshot S0 is taken after the call began, so every
        transaction committed before the call (the command whose response the caller saw, on any
        node) is visible in S0 and has an id below ``H = pg_snapshot_xmax(S0)``. The barrier returns
        True once a poll's snapshot shows, for every projection, no event after its checkpoint with
        ``tx_id < H``. That suffices: a checkpoint C is the last event of a read made when every
        transaction up to ``C.tx_id`` had ended, so every event at or before C (in the log's
        ``(tx_id, position)`` order) was read and applied, and the rows were committed with C. The
        caller's event is at or before C, so a query that starts afterwards sees its effect.

        Nothing more is needed. In particular the barrier does not wait for transactions that were
        still open at the call (their commit cannot have been seen by the caller): when one of them
        holds the tail back, the events committed behind it are after the checkpoint and below H, so
        the barrier waits exactly as long as the tail must. Fast path: one statement, when the
        projections are already current.
        """
        wanted = list(self._runners if names is None else names)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        horizon: int | None = None
        delay = 0.001
        while True:
            row = await self._pool.fetchrow(_BARRIER_SQL, horizon, wanted)
            horizon = row["horizon"]
            if row["behind"] == 0:
                return True
            if row["failed"] or not await self._pause(deadline, delay):
                return False
            delay = min(delay * 2, 0.025)

    async def wait_for(
        self,
        cursor: LogCursor,
        timeout: float = 5.0,  # noqa: ASYNC109
        names: Iterable[str] | None = None,
    ) -> bool:
        """Waits until the projections' checkpoints reach ``cursor`` (e.g. ``AppendResult.cursor`` of
        the caller's own command): cheaper than ``wait_until_current`` when the cursor is known.

        When every wanted runner is active in this process, its in-memory checkpoint is the truth
        (it moves right after its batch commits), so the wait costs no query: with many concurrent
        commands, a query per waiter per poll was the largest cost of a command after its append.
        Otherwise (the runners are in another process) the checkpoints are polled."""
        wanted = list(self._runners if names is None else names)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        local = [self._runners[name] for name in wanted]
        if all(runner.active for runner in local):
            reached = True
            for runner in local:  # one after the other: the total wait is the slowest one's
                remaining = max(0.0, deadline - loop.time())
                reached = reached and await runner.wait_for(cursor, remaining)
            if reached or loop.time() >= deadline:
                return reached
        delay = 0.001
        while True:
            row = await self._pool.fetchrow(_REACHED_SQL, wanted, cursor.tx_id, cursor.position)
            if row["behind"] == 0:
                return True
            if row["failed"] or not await self._pause(deadline, delay):
                return False
            delay = min(delay * 2, 0.025)

    async def _pause(self, deadline: float, delay: float) -> bool:
        """Sleeps ``delay`` or until a local runner commits; False when the deadline has passed."""
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            return False
        progress = self._progress
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(delay, remaining)):
                await progress.wait()
        return True

    def _wake(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    # -- status ----------------------------------------------------------------------------------

    async def status(self) -> list[ProjectionStatus]:
        names = list(self._runners)
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(_STATUS_SQL, names)
            failures = await bookkeeping.load_failures(connection, names)
        result = []
        for row in rows:
            runner = self._runners[row["name"]]
            failure = failures.get(runner.name)
            state: str = runner.state
            failed_event = runner.failed_event
            if not runner.active and runner.state is not RunnerState.FAILED and failure is not None:
                state = RunnerState.FAILED
            if failed_event is None and failure is not None and state == RunnerState.FAILED:
                failed_event = FailedEvent(
                    position=failure.cursor.position,
                    tx_id=failure.cursor.tx_id,
                    event_type=failure.event_type,
                    event_id=failure.event_id,
                    error=failure.error,
                )
            has_row = row["version"] is not None
            result.append(
                ProjectionStatus(
                    name=runner.name,
                    version=runner.projection.version,
                    live_version=row["version"],
                    checkpoint=LogCursor(row["tx_id"], row["position"]) if has_row else None,
                    position=row["position"],
                    lag_events=row["events"],
                    lag_seconds=max(0.0, row["seconds"]),
                    state=str(state),
                    error=failed_event.error if failed_event else None,
                    failed_event=failed_event,
                )
            )
        return result

    # -- builds ----------------------------------------------------------------------------------

    def _startup_settled(self, name: str) -> None:
        """A runner no longer needs (or has asked for) its start-up build: once every runner has
        said so, the requested builds run together, from one scan of the log."""
        self._startup_waiting.discard(name)
        if not self._startup_waiting and self._build_requests:
            requests, self._build_requests = self._build_requests, []
            task = asyncio.create_task(self._build_together(requests), name="projection-build")
            self._build_tasks.add(task)
            task.add_done_callback(self._build_tasks.discard)

    async def _build(self, runner: ProjectionRunner, connection: Any) -> None:
        """Builds ``runner``'s version and makes it live (called by the runner holding its lock)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._build_requests.append((runner, connection, done))
        self._startup_settled(runner.name)
        await done

    async def _build_together(
        self, requests: list[tuple[ProjectionRunner, Any, asyncio.Future[None]]]
    ) -> None:
        """Builds the requesting runners' versions from one scan and switches each to it; each
        runner's future says how its own build went. The futures are resolved last, once nothing
        uses the runners' connections any more."""
        outcomes: dict[int, Exception | None] = {}
        locked: list[tuple[Any, str]] = []
        try:
            targets: list[tuple[int, BuildTarget, bookkeeping.LiveState | None]] = []
            for index, (runner, connection, _) in enumerate(requests):
                projection = runner.projection
                await connection.execute(
                    "SELECT pg_advisory_lock($1, $2)", LOCK_CLASS_BUILD, lock_key(projection.name)
                )
                locked.append((connection, projection.name))
                live = await bookkeeping.load(connection, projection.name)
                await bookkeeping.drop_tables(
                    connection, await bookkeeping.stray_tables(connection, projection, live)
                )
                if bookkeeping.needs_build(live, projection):
                    targets.append((index, BuildTarget(projection, connection, 0), live))
                else:
                    outcomes[index] = None  # built meanwhile
            if targets:
                await self._builder.build([target for _, target, _ in targets])
            for index, target, live in targets:
                if target.failure is not None:
                    outcomes[index] = target.failure
                    continue
                try:
                    await self._builder.catch_up(target)
                    await self._builder.switch(target, live)
                except Exception as error:
                    outcomes[index] = error
                else:
                    outcomes[index] = None
        except Exception as error:
            for index in range(len(requests)):
                outcomes.setdefault(index, error)
        finally:
            for connection, name in locked:
                with contextlib.suppress(Exception):
                    await connection.execute(
                        "SELECT pg_advisory_unlock($1, $2)", LOCK_CLASS_BUILD, lock_key(name)
                    )
            for index, (_, _, done) in enumerate(requests):
                if done.done():
                    continue
                if index not in outcomes:
                    done.cancel()
                elif (outcome := outcomes[index]) is not None:
                    done.set_exception(outcome)
                else:
                    done.set_result(None)

    async def rebuild(self, *names: str) -> dict[str, LogCursor]:
        """Rebuilds the named projections (all when none are named) into fresh tables, from one scan
        of the log up to a fixed ceiling (the newest of their live checkpoints at the start), then
        catches each up to its live checkpoint and switches it, while the live runners (in this
        process or another) keep serving the old tables until their switch. Returns the cursor each
        projection was switched at. Raises (after switching the others) ``PoisonEvent`` when an event
        poisons a projection, ``RebuildConflict`` when its live state changed meanwhile; the tables of
        a rebuild that was not switched are dropped."""
        projections = [self._runners[name].projection for name in (names or self._runners)]
        connections: list[Any] = []
        targets: list[tuple[BuildTarget, bookkeeping.LiveState]] = []
        switched: dict[str, LogCursor] = {}
        failure: Exception | None = None
        try:
            for projection in projections:
                connection = await self._connections.open()
                connections.append(connection)
                await connection.execute(
                    "SELECT pg_advisory_lock($1, $2)", LOCK_CLASS_BUILD, lock_key(projection.name)
                )
                live = await bookkeeping.load(connection, projection.name)
                if live is None or bookkeeping.needs_build(live, projection):
                    raise ProjectionNotLive(
                        f"{projection.name} is not live at version {projection.version} yet"
                    )
                await bookkeeping.drop_tables(
                    connection, await bookkeeping.stray_tables(connection, projection, live)
                )
                targets.append((BuildTarget(projection, connection, live.generation + 1), live))
            ceiling = max(live.cursor for _, live in targets)
            await self._builder.build([target for target, _ in targets], until=ceiling)
            for target, live in targets:
                try:
                    if target.failure is not None:
                        raise target.failure
                    switched[target.projection.name] = await self._builder.switch(target, live)
                except Exception as error:
                    failure = failure or error
            if failure is not None:
                raise failure
            return switched
        finally:
            for target, _ in targets:
                if target.projection.name not in switched:
                    with contextlib.suppress(Exception):
                        await bookkeeping.drop_tables(target.connection, target.tables.values())
            for connection in connections:
                await self._connections.close(connection)


__all__ = [
    "FailedEvent",
    "PoisonEvent",
    "ProjectionNotLive",
    "ProjectionRunner",
    "ProjectionStatus",
    "Projections",
    "RebuildConflict",
    "RunnerState",
]
