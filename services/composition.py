"""The composition root: the one place that picks adapters and wires them to the code that uses them.

``open_runtime`` turns settings into live resources and closes them in reverse order. Every process
(``serve``, the workers, the CLI commands) goes through it; what runs in a process is chosen by
``Settings.workers`` (``projector``: the projection runners; the scheduler and the Kafka relay are
started by ``services.workers``). The runtime always has the read side's barrier (``projections``),
the verifier and the usage recorder, because every process that serves HTTP needs them; a process
without the ``projector`` worker waits on the checkpoints another process advances.
"""

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import asyncpg
import msgspec

from projections.catalogue import ALL_PROJECTIONS
from projections.runtime import Projections
from projections.source import CombinedLogSource
from services import database, metrics
from services.auth.usage import UsageRecorder
from services.auth.usage_log import UsageLog
from services.auth.verifier import TokenVerifier
from services.config import Settings
from services.dependencies import Dependencies
from services.directory import StreamDirectory
from services.dispatch import Dispatcher
from services.eventstore import PostgresEventStore
from services.eventstore.commit_notices import ProgressNotices
from services.eventstore.notifications import LogNotifications
from services.eventstore.shared_reads import SharedLogReads
from services.eventstore.tail import LogTail
from services.idempotency import IdempotencyStore
from services.oidc.keys import IssuerKeys
from services.organization import Organization, ensure_organization
from services.pepper import load_pepper
from services.policy import FederationPolicy, TokenPolicy
from services.ports import EventStore
from services.roles.catalogue import load_catalogue

Clock = Callable[[], datetime]
_log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Runtime(msgspec.Struct, kw_only=True):
    settings: Settings
    dsn: str
    pool: asyncpg.Pool
    store: EventStore
    notifications: LogNotifications
    organization: Organization
    deps: Dependencies
    dispatcher: Dispatcher
    projections: Projections
    verifier: TokenVerifier
    usage: UsageRecorder
    idempotency: IdempotencyStore
    gauges: metrics.ProcessGauges
    """This process's own gauges (pool, usage-log buffer), sampled periodically and when scraped."""
    oidc_keys: IssuerKeys
    """The signing keys of the OIDC issuers federated credentials trust, cached per issuer."""
    clock: Clock = utc_now

    async def until_read_models_current(self) -> None:
        """Waits (as long as it takes: a first build of a long log takes a while) until the read
        models hold the whole log, so that the service is ready to answer reads and verify tokens."""
        while not await self.projections.wait_until_current(5.0):
            _log.info("waiting for the read models to catch up with the log")


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings, *, pool_size: int = 20, clock: Clock = utc_now
) -> AsyncIterator[Runtime]:
    pepper = load_pepper(settings)
    catalogue = load_catalogue(settings.role_catalogue)
    dsn = await database.open_database(settings.database_url, settings.data_dir)
    async with contextlib.AsyncExitStack() as stack:
        pool = await database.create_pool(dsn, max_size=pool_size)
        stack.push_async_callback(pool.close)
        notifications = LogNotifications(lambda: database.connect(dsn))
        await notifications.start()
        stack.push_async_callback(notifications.stop)
        store = PostgresEventStore(pool)
        if store.notices is not None:  # before the pool closes: the last commits are announced
            stack.push_async_callback(store.notices.flush)
        organization = await ensure_organization(store)
        deps = Dependencies(
            store=store,
            directory=StreamDirectory(store),
            catalogue=catalogue,
            token_policy=TokenPolicy(
                max_lifetime=settings.max_token_lifetime,
                allow_non_expiring=settings.allow_non_expiring_tokens,
            ),
            pepper=pepper,
            organization_id=organization.organization_id,
            federation=FederationPolicy(
                audience=settings.deployment_uri, max_lifetime=settings.max_federated_token_lifetime
            ),
        )
        idempotency = IdempotencyStore(pool)
        dispatcher = Dispatcher(deps, claims=idempotency, observe=metrics.observe_command)
        shared_reads = SharedLogReads(store)  # one read of the log for the runners and the verifier
        source = CombinedLogSource(LogTail(shared_reads, notifications.waiter()), store)
        read_model_notices = ProgressNotices(pool)  # tells the other processes' barriers
        stack.push_async_callback(read_model_notices.flush)
        projections = Projections(
            pool,
            source,
            ALL_PROJECTIONS,
            connect=lambda: database.connect(dsn),
            announce=read_model_notices.moved,
        )
        notifications.on_read_models(projections.progressed_elsewhere)
        if "projector" in settings.workers:
            await projections.start()
            stack.push_async_callback(projections.stop)
        else:
            await projections.prepare()
        verifier = TokenVerifier(pool, notifications, pepper, log=shared_reads)
        await verifier.start()
        stack.push_async_callback(verifier.stop)
        usage_log = UsageLog(pool, pepper)
        usage = UsageRecorder(
            dispatcher,
            expiry=verifier,
            log=usage_log,
            flush_interval=settings.usage_flush_seconds,
        )
        await usage.start()
        stack.push_async_callback(usage.stop)  # runs before the verifier and pool close: flushes
        gauges = metrics.ProcessGauges(
            [lambda: metrics.sample_pool(pool), lambda: metrics.USAGE_BUFFERED.set(usage_log.pending)]
        )
        await gauges.start()
        stack.push_async_callback(gauges.stop)
        oidc_keys = IssuerKeys()
        stack.push_async_callback(oidc_keys.close)
        yield Runtime(
            settings=settings,
            gauges=gauges,
            dsn=dsn,
            pool=pool,
            store=store,
            notifications=notifications,
            organization=organization,
            deps=deps,
            dispatcher=dispatcher,
            projections=projections,
            verifier=verifier,
            usage=usage,
            idempotency=idempotency,
            oidc_keys=oidc_keys,
            clock=clock,
        )
