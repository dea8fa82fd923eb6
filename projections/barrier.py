"""The read side's barrier: waiting until the projections hold what a caller has written.

``wait_until_current`` needs nothing from the caller (it waits for every event committed before the
call); ``wait_for`` waits for a known cursor, without a query when every wanted runner is active in
this process (its ``CursorWaiters``), else by polling the checkpoints. A poll sleeps until a local
runner reports progress (``progressed``) or a short, growing delay has passed.
"""

import asyncio
import contextlib
from collections.abc import Iterable, Mapping

import asyncpg

from events import LogCursor
from projections.runner import ProjectionRunner

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


class ReadBarrier:
    """Read-your-writes over one process's runners; ``pool`` serves its short queries."""

    def __init__(self, pool: asyncpg.Pool, runners: Mapping[str, ProjectionRunner]) -> None:
        self._pool = pool
        self._runners = runners
        self._progress = asyncio.Event()

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

    def progressed(self) -> None:
        """A local runner committed a batch (or stopped): pollers look again at once."""
        self._progress.set()
        self._progress = asyncio.Event()
