"""The scheduler worker: turns time into token events (``token.expired``, ``token.expiring_soon``,
``token.rotation_due``, ``token.secret_retired``) and account events (``account.expired``,
``account.expiring_soon``) through the dispatcher, as tokenledger itself (these commands are its
own: no caller may send them).

Deadlines live in PostgreSQL (the due index, ``projections.deadlines``), never in APScheduler's job
store: APScheduler holds one job, the next wake-up. A tick emits every deadline due at its start, in
pages, each token's or account's deadlines in due order and up to ``EMIT_CONCURRENCY`` of them at
once; after each page it waits for the due index to apply the events it appended
(so the next page does not see them again), then it schedules the next wake-up at the earliest
pending deadline, at most ``max_sleep`` away (and ``retry_delay`` away when a due deadline was moot
but is still in the index, i.e. the index lags the log).

Waking early: every append NOTIFYs; the worker then waits until the due index holds the notified
position and looks for the earliest deadline again, moving the wake-up forward if it is sooner. A
planning lock keeps that from interleaving with a tick.

Safety: each event's id is derived from its deadline (``services.tokens.model.deadline_key``,
``services.accounts.model.deadline_key``) and every handler folds the token or account and decides
again, so several schedulers (or a retry after a crash)
append each event once. The first tick runs at start-up and emits every deadline missed meanwhile.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from events import LogCursor
from projections import deadlines
from projections.runtime import Projections
from services import metrics
from services.accounts.commands import ExpireAccount, WarnAccountExpiring
from services.authorization import SystemActor
from services.commands import CommandContext
from services.dispatch import Dispatcher
from services.eventstore.notifications import LogNotifications, Waiter
from services.scheduler import due_index
from services.scheduler.due_index import Deadline, DueIndex
from services.tokens.commands import ExpireToken, FlagTokenRotationDue, RetireTokenSecret, WarnTokenExpiring

_log = logging.getLogger(__name__)

SCHEDULER_ACTOR = "system:scheduler"
SCHEDULER = SystemActor(SCHEDULER_ACTOR)
DUE_INDEX = deadlines.DeadlinesProjection.name
_JOB_ID = "tokenledger-scheduler-tick"
EMIT_CONCURRENCY = 16
"""Subjects whose deadlines a tick emits at once: one command after another capped a burst of 10k
expiries at ~70/s; concurrent appends share their commits (the store's group commit)."""


class Scheduler:
    """One scheduler process's worker (``start()``/``stop()``); any number may run at once."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        dispatcher: Dispatcher,
        projections: Projections,
        notifications: LogNotifications,
        leads: Sequence[timedelta],
        rotation_period: timedelta | None,
        clock: Callable[[], datetime],
        batch_size: int = 500,
        max_sleep: float = 30.0,
        retry_delay: float = 1.0,
        projection_wait: float = 2.0,
    ) -> None:
        self._pool = pool
        self._dispatcher = dispatcher
        self._projections = projections
        self._notifications = notifications
        self._leads = tuple(leads)
        self._rotation_period = rotation_period
        self._clock = clock
        self._index = DueIndex(leads, rotation_period)
        self._batch_size = batch_size
        self._max_sleep = max_sleep
        self._retry_delay = retry_delay
        self._projection_wait = projection_wait
        self._planning = asyncio.Lock()
        self._apscheduler: AsyncIOScheduler | None = None
        self._waiter: Waiter | None = None
        self._listener: asyncio.Task[None] | None = None
        self._ticking: asyncio.Task[Any] | None = None
        self._wake_at: datetime | None = None
        self._waiting_for_index = False
        self.emitted = 0
        """Events appended by this worker since start."""

    async def start(self) -> None:
        if self._apscheduler is not None:
            raise RuntimeError("the scheduler is already started")
        self._waiter = self._notifications.waiter()
        self._apscheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=UTC)
        self._apscheduler.start()
        _log.info("scheduler: active (schedulers need no lock: each deadline's event is appended once)")
        self._schedule(self._clock())  # at once: emits what was missed while no scheduler ran
        self._listener = asyncio.create_task(self._listen(), name="scheduler-wake-ups")

    async def stop(self) -> None:
        tasks = [task for task in (self._listener, self._ticking) if task is not None]
        if self._apscheduler is not None:
            self._apscheduler.shutdown(wait=False)  # cancels a running tick
            self._apscheduler = None
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._listener = None
        if self._waiter is not None:
            self._notifications.forget(self._waiter)
            self._waiter = None

    async def tick(self) -> int:
        """Emits every deadline due now; returns how many events were appended."""
        now = self._clock()
        moot: set[str] = set()
        appended = 0
        while True:
            async with self._pool.acquire() as connection:
                page = await self._index.due(connection, now, self._batch_size, moot)
            metrics.SCHEDULER_BACKLOG.set(len(page.deadlines))
            cursors = await self._emit_page(page.deadlines, moot)
            appended += len(cursors)
            last = max(cursors, default=None)
            if last is not None:
                await self._projections.wait_for(last, self._projection_wait, names=[DUE_INDEX])
            if not page.more:
                self.emitted += appended
                return appended

    async def _emit_page(self, page: Sequence[Deadline], moot: set[str]) -> list[LogCursor]:
        """Emits a page's deadlines, ``EMIT_CONCURRENCY`` subjects at a time (each subject's own
        deadlines one after the other, in due order); the cursors of the events appended. Moot
        subjects are added to ``moot``. A failure stops the tick (the next one emits what is left:
        every event is keyed by its deadline)."""
        by_subject: dict[str, list[Deadline]] = {}
        for deadline in page:
            by_subject.setdefault(deadline.subject_id, []).append(deadline)
        slots = asyncio.Semaphore(EMIT_CONCURRENCY)
        cursors: list[LogCursor] = []

        async def subject(deadlines_of_one: list[Deadline]) -> None:
            async with slots:
                for deadline in deadlines_of_one:
                    cursor = await self._emit(deadline)
                    metrics.SCHEDULER_BACKLOG.dec()
                    if cursor is None:
                        moot.add(deadline.subject_id)
                        continue
                    lateness = (self._clock() - deadline.due).total_seconds()
                    metrics.SCHEDULER_LATENESS.labels(deadline.kind).observe(max(0.0, lateness))
                    cursors.append(cursor)

        async with asyncio.TaskGroup() as group:
            for deadlines_of_one in by_subject.values():
                group.create_task(subject(deadlines_of_one))
        return cursors

    async def _emit(self, deadline: Deadline) -> LogCursor | None:
        """Runs the handler of ``deadline``; the cursor of its event, None when it was moot."""
        ctx = CommandContext(now=self._clock(), actor=SCHEDULER_ACTOR)
        token_id = deadline.subject_id
        command: object
        match deadline.kind:
            case deadlines.EXPIRY:
                command = ExpireToken(token_id=token_id)
            case due_index.WARNING:
                command = WarnTokenExpiring(token_id=token_id, leads=self._leads)
            case deadlines.ROTATION:
                command = FlagTokenRotationDue(token_id=token_id, deployment_period=self._rotation_period)
            case deadlines.RETIREMENT:
                command = RetireTokenSecret(token_id=token_id, secret_version=deadline.ref)
            case due_index.ACCOUNT_EXPIRY:
                command = ExpireAccount(account_id=deadline.subject_id)
            case due_index.ACCOUNT_WARNING:
                command = WarnAccountExpiring(account_id=deadline.subject_id, leads=self._leads)
            case _:
                raise ValueError(f"unknown deadline kind {deadline.kind!r}")
        outcome = await self._dispatcher.dispatch(command, SCHEDULER, ctx)
        return outcome.cursor

    # -- wake-ups --------------------------------------------------------------------------------

    async def _run(self) -> None:
        """The APScheduler job: a tick, then the next wake-up."""
        async with self._planning:
            self._ticking = asyncio.current_task()
            try:
                await self.tick()
                wake_at = await self._next_wake()
                if self._waiting_for_index:
                    self._waiting_for_index = False
                    _log.info("the due index is built: scheduling token deadlines")
            except asyncpg.UndefinedTableError:
                # A fresh database: no projector has built the read models yet. Nothing can be due.
                if not self._waiting_for_index:
                    self._waiting_for_index = True
                    _log.info(
                        "waiting for the read models: the due index is built by a projector"
                        " (tokenledger serve or tokenledger projector)"
                    )
                wake_at = self._clock() + timedelta(seconds=self._retry_delay)
            except Exception:
                _log.exception("scheduler tick failed; retrying in %.1fs", self._retry_delay)
                wake_at = self._clock() + timedelta(seconds=self._retry_delay)
            finally:
                self._ticking = None
            self._schedule(wake_at)

    async def _next_wake(self) -> datetime:
        now = self._clock()
        async with self._pool.acquire() as connection:
            due = await self._index.next_due(connection, now)
        if due is not None and due <= now:
            # Still due after a tick: moot for the handlers, not yet removed from the index.
            return now + timedelta(seconds=self._retry_delay)
        return due if due is not None else now + timedelta(seconds=self._max_sleep)

    def _schedule(self, wake_at: datetime) -> None:
        """(Re)places the one APScheduler job at ``wake_at`` (clock time), at most ``max_sleep`` away."""
        assert self._apscheduler is not None
        now = self._clock()
        delay = min(max((wake_at - now).total_seconds(), 0.0), self._max_sleep)
        self._wake_at = now + timedelta(seconds=delay)
        self._apscheduler.add_job(
            self._run,
            "date",
            run_date=datetime.now(UTC) + timedelta(seconds=delay),
            id=_JOB_ID,
            replace_existing=True,
            max_instances=2,  # the finishing run may still count when its successor is due
            misfire_grace_time=None,
        )

    async def _listen(self) -> None:
        """Moves the wake-up forward when an append created a sooner deadline."""
        assert self._waiter is not None
        waiter = self._waiter
        while True:
            await waiter.wait(self._max_sleep)
            try:
                await self._projections.wait_for(waiter.notified, self._projection_wait, names=[DUE_INDEX])
                async with self._planning:
                    wake_at = await self._next_wake()
                    if self._wake_at is None or wake_at < self._wake_at:
                        self._schedule(wake_at)
            except asyncio.CancelledError:
                raise
            except asyncpg.UndefinedTableError:
                continue  # no due index yet: the tick says once that it waits for the read models
            except Exception as error:
                _log.warning("scheduler could not look for a sooner deadline (%s)", error)
