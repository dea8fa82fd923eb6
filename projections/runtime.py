"""The projection runtime of one process: its runners, and what the rest of the service asks of them.

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

The parts: ``projections.runner`` (one runner per projection: lock, build if needed, follow the log),
``projections.builds`` (start-up builds from one scan, ``rebuild``), ``projections.barrier``
(read-your-writes) and ``projections.status``. ``Projections`` holds them together.
"""

import asyncio
from collections.abc import Callable, Iterable, Sequence

import asyncpg

from events import LogCursor
from projections import bookkeeping, known
from projections.barrier import FALLBACK_SECONDS, ReadBarrier
from projections.base import LogSource, Projection
from projections.build import BUILD_BATCH_SIZE
from projections.builds import Builds
from projections.known import CommittedCheckpoint
from projections.runner import Connect, Connections, ProjectionRunner
from projections.status import ProjectionStatus, projection_status


class Projections:
    """All runners of one process.

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
        announce: Callable[[Callable[[], str]], None] | None = None,
        fallback_seconds: float = FALLBACK_SECONDS,
    ) -> None:
        """``announce``: called when a local runner has committed a batch (or stopped), to tell the
        other processes, with a function that gives the payload (``projections.known.encode`` of the
        local runners' committed checkpoints) when the notice is sent: the composition root NOTIFYs
        them, and their ``progressed_elsewhere`` gets the payload. ``fallback_seconds``: see
        ``ReadBarrier``."""
        names = [p.name for p in projections]
        tables = [t for p in projections for t in p.tables]
        if len(set(names)) != len(names) or len(set(tables)) != len(tables):
            raise ValueError("projection names and their tables must be unique")
        self._pool = pool
        self._connections = Connections(pool, connect)
        self._builds = Builds(source, self._connections, batch_size=build_batch_size)
        self._runners: dict[str, ProjectionRunner] = {}
        self._barrier = ReadBarrier(pool, self._runners, fallback_seconds=fallback_seconds)
        self._announce = announce
        for projection in projections:
            self._runners[projection.name] = ProjectionRunner(
                projection,
                source,
                self._connections,
                self._builds,
                self._progressed,
                lock_retry_seconds=lock_retry_seconds,
            )

    def _progressed(self) -> None:
        self._barrier.learned(self.committed())
        if self._announce is not None:
            self._announce(self._payload)

    def committed(self) -> list[CommittedCheckpoint]:
        """The checkpoints committed by this process's runners that follow the log."""
        return [c for c in (runner.committed for runner in self._runners.values()) if c is not None]

    def _payload(self) -> str:
        return known.encode(self.committed())

    @property
    def checkpoint_looks(self) -> int:
        """How often ``wait_for`` has read the checkpoint table (a seam for tests)."""
        return self._barrier.looks

    def progressed_elsewhere(self, payload: str) -> None:
        """A runner (in another process, or this one's own notice coming back) committed a batch:
        ``payload`` is its process's announcement (``projections.known``); waits that its
        checkpoints reach resolve, and pollers of the checkpoints look again now rather than after
        their back-off."""
        self._barrier.learned(known.decode(payload))

    @property
    def names(self) -> list[str]:
        return list(self._runners)

    def runner(self, name: str) -> ProjectionRunner:
        """One runner, to look at its state (a seam the runtime's tests use to watch a runner fail,
        stand by and take over)."""
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
        self._builds.expect(self._runners)
        for runner in self._runners.values():
            runner.start()

    async def stop(self) -> None:
        self._builds.cancel()
        await asyncio.gather(*(runner.stop() for runner in self._runners.values()))
        await self._builds.drain()

    async def wait_until_current(
        self,
        timeout: float = 5.0,  # noqa: ASYNC109 (False on timeout is part of the answer)
        names: Iterable[str] | None = None,
    ) -> bool:
        """See ``ReadBarrier.wait_until_current``."""
        return await self._barrier.wait_until_current(timeout, names)

    async def wait_for(
        self,
        cursor: LogCursor,
        timeout: float = 5.0,  # noqa: ASYNC109
        names: Iterable[str] | None = None,
    ) -> bool:
        """See ``ReadBarrier.wait_for``."""
        return await self._barrier.wait_for(cursor, timeout, names)

    async def status(self) -> list[ProjectionStatus]:
        return await projection_status(self._pool, self._runners)

    async def rebuild(
        self, *names: str, advance: Callable[[int], None] | None = None
    ) -> dict[str, LogCursor]:
        """See ``Builds.rebuild``; all projections when none are named."""
        chosen = [self._runners[name].projection for name in names or self._runners]
        return await self._builds.rebuild(chosen, advance)
