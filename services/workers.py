"""The background workers a process runs besides HTTP, chosen by ``TOKENLEDGER_WORKERS``, and their
wiring: each worker is given what it uses, here, never the runtime itself.

``projector`` (the projection runners) is started by ``open_runtime`` itself, because the read side's
barrier belongs to the runtime. ``scheduler`` also brings the time-driven housekeeping (sealing the
log's chained checkpoints, deleting expired idempotency claims and the replay claims of expired
id-tokens); ``relay`` is the Kafka relay when
Kafka is configured. ``serve`` runs them next to the HTTP service; ``tokenledger
projector|scheduler|relay`` runs one alone (see ``services.cli``).
"""

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from typing import Protocol

import msgspec

from services import database, metrics
from services.audit.sealer import CheckpointSealer
from services.composition import Runtime, open_runtime
from services.config import ConfigError, Settings
from services.idempotency import IdempotencyHousekeeping
from services.oidc.replays import ReplayClaimsHousekeeping
from services.relay.cloudevents import Topics
from services.relay.relay import Relay, RelayConfig
from services.scheduler import Scheduler

_log = logging.getLogger(__name__)


class Worker(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def workers_for(runtime: Runtime) -> list[Worker]:
    """The workers besides the projector that ``runtime.settings.workers`` asks for."""
    settings = runtime.settings
    chosen: list[Worker] = []
    if "scheduler" in settings.workers:
        chosen.append(
            Scheduler(
                pool=runtime.pool,
                dispatcher=runtime.dispatcher,
                projections=runtime.projections,
                notifications=runtime.notifications,
                leads=settings.expiry_warning_leads,
                rotation_period=settings.rotation_period,
                clock=runtime.clock,
            )
        )
        chosen.append(CheckpointSealer(runtime.pool))
        chosen.append(IdempotencyHousekeeping(runtime.idempotency))
        chosen.append(ReplayClaimsHousekeeping(runtime.pool, clock=runtime.clock))
    if "relay" in settings.workers:
        if settings.kafka_bootstrap_servers is None:
            _log.warning("KAFKA_BOOTSTRAP_SERVERS is not set: no Kafka relay; events wait in the log")
        else:
            config = RelayConfig(
                bootstrap_servers=settings.kafka_bootstrap_servers,
                topics=Topics(tokens=settings.kafka_tokens_topic, accounts=settings.kafka_accounts_topic),
                source=settings.deployment_uri,
                partitions=settings.kafka_topic_partitions,
                replication_factor=settings.kafka_replication_factor,
            )
            dsn = runtime.dsn
            chosen.append(Relay(config, runtime.store, runtime.notifications, lambda: database.connect(dsn)))
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
    if name == "relay" and settings.kafka_bootstrap_servers is None:
        raise ConfigError(
            "KAFKA_BOOTSTRAP_SERVERS is not set: the relay would have nowhere to publish;"
            " set it (tokenledger kafka-local prints one) or do not run the relay"
        )
    alone = msgspec.structs.replace(settings, workers=frozenset({name}))
    async with open_runtime(alone, pool_size=5) as runtime, running_workers(runtime):
        await wait_for_signal()
    metrics.forget_process()
    return 0
