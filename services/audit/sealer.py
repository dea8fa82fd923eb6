"""A worker that seals checkpoints periodically (the ``Worker`` protocol of ``services.workers``).

Every ``interval`` seconds it seals what has committed since the last checkpoint. Several processes
may run one: ``tl_checkpoint`` serialises checkpointers among themselves, never writers. A failed
round is logged and retried at the next tick.
"""

import asyncio
import contextlib
import logging

import asyncpg

from services.audit.checkpoints import DEFAULT_EVENTS_PER_CHECKPOINT, seal

_log = logging.getLogger(__name__)


class CheckpointSealer:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        interval: float = 60.0,
        events_per_checkpoint: int = DEFAULT_EVENTS_PER_CHECKPOINT,
    ) -> None:
        self._pool = pool
        self._interval = interval
        self._events_per_checkpoint = events_per_checkpoint
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="checkpoint-sealer")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                sealed = await seal(self._pool, events_per_checkpoint=self._events_per_checkpoint)
            except (asyncpg.PostgresError, OSError):
                _log.exception("sealing log checkpoints failed; retrying in %.0f s", self._interval)
            else:
                if sealed:
                    _log.info("sealed checkpoints up to %d", sealed[-1].checkpoint)
            await asyncio.sleep(self._interval)
