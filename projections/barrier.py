"""The read side's barrier: waiting until the projections hold what a caller has written.

``wait_until_current`` needs nothing from the caller (it waits for every event committed before the
call): it polls the checkpoints, and a poll sleeps until a runner reports progress (``progressed``) or
a short, growing delay has passed.

``wait_for`` waits for a known cursor without a query in the common cases. When every wanted runner
is active in this process, its in-memory checkpoint (``CursorWaiters``) is the truth. Otherwise (the
runners are in another process) the checkpoints that process announces after each batch
(``learned``, ``projections.known``) resolve the wait when they reach its cursor. Only a wait that no
announcement has resolved after ``fallback_seconds`` (a notice was lost, the LISTEN connection was
down, or the cursor is older than this process's knowledge) looks at the checkpoint table, in one
query shared by every waiter at that moment, and learns from it like from a notice.
"""

import asyncio
import contextlib
from collections.abc import Iterable, Mapping, Sequence

import asyncpg

from events import LogCursor
from projections.known import CommittedCheckpoint, KnownCheckpoints
from projections.runner import ProjectionRunner

_BARRIER_SQL = """
WITH horizon AS (
    SELECT coalesce($1::bigint, pg_snapshot_xmax(pg_current_snapshot())::text::bigint) AS xid
), head AS (
    -- The newest visible event under the horizon: one backward step of the commit-order index.
    -- (A checkpoint is behind iff some such event is after it, iff this one is; an EXISTS per
    -- checkpoint was planned as a sequential scan of the whole log.)
    SELECT e.tx_id, e.global_position FROM events e, horizon
     WHERE e.tx_id < horizon.xid::text::xid8
     ORDER BY e.tx_id DESC, e.global_position DESC
     LIMIT 1
)
SELECT horizon.xid AS horizon,
       (SELECT count(*) FROM unnest($2::text[]) AS n (name)
          LEFT JOIN projection_checkpoints c ON c.name = n.name
         WHERE c.name IS NULL
            OR EXISTS (SELECT 1 FROM head
                        WHERE (head.tx_id, head.global_position) > (c.tx_id::text::xid8, c.position)))
           AS behind,
       (SELECT count(*) FROM projection_failures f WHERE f.name = ANY ($2::text[])) AS failed
  FROM horizon
"""

_CHECKPOINTS_SQL = """
SELECT name, version, generation, tx_id, position, false AS failed FROM projection_checkpoints
UNION ALL
SELECT name, 0, 0, 0, 0, true FROM projection_failures
"""
FALLBACK_SECONDS = 0.05
"""How long a ``wait_for`` on another process's runners waits for their announcement before it looks
at the checkpoints itself (then twice as long each time, up to ``_FALLBACK_MAX``)."""
_FALLBACK_MAX = 0.4


class ReadBarrier:
    """Read-your-writes over one process's runners; ``pool`` serves its short queries."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        runners: Mapping[str, ProjectionRunner],
        *,
        fallback_seconds: float = FALLBACK_SECONDS,
    ) -> None:
        self._pool = pool
        self._runners = runners
        self._progress = asyncio.Event()
        self._known = KnownCheckpoints()
        self._fallback = fallback_seconds
        self._look: asyncio.Task[set[str]] | None = None
        self.looks = 0
        """Queries of the checkpoint table made by ``wait_for`` (a seam for tests)."""

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
        Otherwise the checkpoints announced by the process that runs them resolve it (see the module
        docstring); False on timeout, or when a look finds a wanted projection failed."""
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
        fallback = self._fallback
        for name in wanted:  # one after the other, as above
            while not await self._known.wait_for(
                name, cursor, min(fallback, max(0.0, deadline - loop.time()))
            ):
                failed = await self._look_at_checkpoints()
                if self._known.reached(name, cursor):
                    break
                if name in failed or loop.time() >= deadline:
                    return False
                fallback = min(fallback * 2, _FALLBACK_MAX)
        return True

    def learned(self, checkpoints: Sequence[CommittedCheckpoint]) -> None:
        """Checkpoints committed by runners (of another process, or this one's): waits they reach
        resolve, and pollers of the checkpoints look again at once."""
        self._known.learn(checkpoints)
        self.progressed()

    async def _look_at_checkpoints(self) -> set[str]:
        """Reads every checkpoint into what is known (one query at a time, shared by the waiters that
        ask meanwhile); the names of the failed projections."""
        if self._look is None or self._look.done():
            self._look = asyncio.create_task(self._read_checkpoints(), name="barrier look")
        return await asyncio.shield(self._look)

    async def _read_checkpoints(self) -> set[str]:
        self.looks += 1
        rows = await self._pool.fetch(_CHECKPOINTS_SQL)
        self._known.learn(
            CommittedCheckpoint(
                r["name"], r["version"], r["generation"], LogCursor(r["tx_id"], r["position"])
            )
            for r in rows
            if not r["failed"]
        )
        return {r["name"] for r in rows if r["failed"]}

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
