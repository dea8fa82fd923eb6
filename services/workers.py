"""The background workers a process runs besides HTTP, chosen by ``TOKENLEDGER_WORKERS``.

``projector`` (the projection runners) is started by ``open_runtime`` itself, because the read side's
barrier belongs to the runtime; the others are built here from the runtime. ``serve`` runs them next
to the HTTP service; ``tokenledger projector|scheduler|relay`` runs one alone (see ``services.cli``).
"""

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from typing import Protocol

import msgspec

from services.audit.sealer import CheckpointSealer
from services.composition import Runtime, open_runtime
from services.config import Settings
from services.relay.relay import relay_from
from services.scheduler import scheduler_from


class Worker(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def workers_for(runtime: Runtime) -> list[Worker]:
    """The workers besides the projector that ``runtime.settings.workers`` asks for."""
    chosen: list[Worker] = []
    if "scheduler" in runtime.settings.workers:
        chosen.append(scheduler_from(runtime))
        # Sealing the global log's chained checkpoints is time-driven housekeeping too.
        chosen.append(CheckpointSealer(runtime.pool))
    if "relay" in runtime.settings.workers and (relay := relay_from(runtime)) is not None:
        chosen.append(relay)
    return chosen


@contextlib.asynccontextmanager
async def running_workers(runtime: Runtime) -> AsyncIterator[None]:
    """Starts the chosen workers; stops them in reverse order on the way out."""
    async with contextlib.AsyncExitStack() as stack:
        for worker in workers_for(runtime):
            await worker.start()
            stack.push_async_callback(worker.stop)
        yield


async def wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


async def run_worker(settings: Settings, name: str) -> int:
    """``tokenledger <name>``: one worker alone, until SIGTERM or SIGINT."""
    alone = msgspec.structs.replace(settings, workers=frozenset({name}))
    async with open_runtime(alone, pool_size=5) as runtime, running_workers(runtime):
        await wait_for_signal()
    return 0
