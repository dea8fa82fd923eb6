"""A worker that seals checkpoints periodically (the ``Worker`` protocol of ``services.workers``).

Every ``interval`` seconds it seals what has committed since the last checkpoint. Several processes
may run one: ``tl_checkpoint`` serialises checkpointers among themselves, never writers. A failed
round is logged and retried at the next tick (``follower.worker.PeriodicWorker``).
"""

import logging

import asyncpg

from follower.worker import PeriodicWorker
from services.audit.checkpoints import DEFAULT_EVENTS_PER_CHECKPOINT, seal

_log = logging.getLogger(__name__)


class CheckpointSealer(PeriodicWorker):
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        interval: float = 60.0,
        events_per_checkpoint: int = DEFAULT_EVENTS_PER_CHECKPOINT,
    ) -> None:
        async def seal_round() -> None:
            sealed = await seal(pool, events_per_checkpoint=events_per_checkpoint)
            if sealed:
                _log.info("sealed checkpoints up to %d", sealed[-1].checkpoint)

        super().__init__("checkpoint-sealer", seal_round, interval=interval)
