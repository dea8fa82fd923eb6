"""The composition root: the one place that picks adapters and wires them to the code that uses them.

``open_runtime`` turns settings into live resources (database, pool, store, log notifications) and
closes them in reverse order. Every process (``serve``, the workers, the CLI commands) goes through it.
"""

import contextlib
from collections.abc import AsyncIterator

import asyncpg
import msgspec

from services import database
from services.config import Settings
from services.eventstore import EventStore
from services.eventstore.notifications import LogNotifications


class Runtime(msgspec.Struct, kw_only=True):
    settings: Settings
    dsn: str
    pool: asyncpg.Pool
    store: EventStore
    notifications: LogNotifications


@contextlib.asynccontextmanager
async def open_runtime(settings: Settings, *, pool_size: int = 20) -> AsyncIterator[Runtime]:
    dsn = await database.resolve_dsn(settings.database_url, settings.data_dir)
    await database.migrate(dsn)
    async with contextlib.AsyncExitStack() as stack:
        pool = await database.create_pool(dsn, max_size=pool_size)
        stack.push_async_callback(pool.close)
        notifications = LogNotifications(lambda: database.connect(dsn))
        await notifications.start()
        stack.push_async_callback(notifications.stop)
        yield Runtime(
            settings=settings,
            dsn=dsn,
            pool=pool,
            store=EventStore(pool),
            notifications=notifications,
        )
