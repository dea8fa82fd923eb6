"""Token verification: secret -> ``Principal`` or ``Rejection``, cached, and never staler than the log.

Path of one verification: offline well-formedness check -> HMAC under the pepper -> cache -> on a
miss, ONE SQL statement that reads the secret, token and account rows, the roles (direct and through
teams), and the lowest checkpoint of the projections those rows come from, all in one snapshot.
Every verification then re-checks state and time against the (possibly cached) rows, so expiry
never depends on the scheduler having recorded ``token.expired``.

Why the cache is safe
---------------------
The verifier follows the log itself (a ``LogTail``, woken by NOTIFY), and for every event that can
change a verification it drops the affected entries and records a *dirty cursor*: the log position
of the latest such event, per token, per account, per secret hash, and one global cursor for team
role changes. Rows loaded from the read model at projection checkpoint C are used, and cached, only
if C is at or past every dirty cursor that concerns them. Otherwise the read model has not yet
applied an event the verifier already knows about: the verifier waits (bounded, ``max_wait``) for
the projections to pass it and reloads, and if they do not, rejects (``STALE``, fail-closed) and
logs a warning. So a revocation is effective on a node as soon as that node has *seen* the event
(immediately when the command ran on this node and the API calls ``note_appended``; within the
NOTIFY round trip, a few milliseconds, elsewhere), however far behind the projections are.

Dirty cursors are forgotten once an observed checkpoint passes them; ``_pruned_upto`` remembers the
highest checkpoint up to which anything was forgotten, and rows older than it are never used. The
same mark, set to the log head at start-up, covers the events before the verifier began to follow
the log, and it makes a projection checkpoint that goes backwards (a rebuild in place) fail closed.

The cache is trusted only while the tail is alive: if the tail has not completed a read of the log
for ``max_tail_silence`` seconds, every verification goes to the database.

The parts: ``services.auth.evaluation`` (the pure verdict), ``services.auth.invalidation`` (what an
event invalidates, the dirty cursors), ``services.auth.entry_cache`` (the cache),
``services.auth.verifier_reads`` (the SQL); this module follows the log and puts them together. Its
tail is a ``follower`` session (retried with back-off) and ``wait_for`` is a ``CursorWaiters``.

Expected projection behaviour: each projection commits its rows and its checkpoint together, and
advances its checkpoint past events it ignores (otherwise the minimum checkpoint stalls and
verifications of recently changed tokens fail closed).
"""

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from events import Event, LogCursor
from events.envelope import LOG_START
from follower.waiters import CursorWaiters
from follower.worker import BackgroundTask, Backoff, keep_running, periodically
from services import metrics
from services.auth.entry_cache import EntryCache
from services.auth.evaluation import Entry, evaluate
from services.auth.invalidation import Drop, Extended, Invalidations
from services.auth.principal import Principal, Rejection, Verification
from services.auth.verifier_reads import (
    CheckpointPoll,
    HeartbeatReads,
    VerificationReads,
    default_projection_names,
)
from services.eventstore import PostgresEventStore
from services.eventstore.notifications import LogNotifications, Waiter
from services.eventstore.shared_reads import LogReader
from services.eventstore.tail import LogTail
from services.ports import AppendResult, StreamAppend
from services.tokens.secrets import is_well_formed, secret_hash

_log = logging.getLogger(__name__)


@dataclass
class VerifierMetrics:
    """Counters since start. ``rejections`` counts every rejection by reason (``STALE`` included)."""

    verifications: int = 0
    accepted: int = 0
    hits: int = 0
    misses: int = 0
    loads: int = 0
    stale_waits: int = 0
    unknown_retries: int = 0
    load_errors: int = 0
    invalidations: int = 0
    cache_clears: int = 0
    tail_events: int = 0
    tail_errors: int = 0
    rejections: Counter[Rejection] = field(default_factory=Counter)

    def snapshot(self) -> dict[str, int]:
        values = {name: value for name, value in vars(self).items() if isinstance(value, int)}
        for reason in Rejection:
            values[f"rejected_{reason.value}"] = self.rejections[reason]
        return values


class TokenVerifier:
    """Verifies presented secrets. One per process; ``start()`` before use, ``stop()`` at the end."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        notifications: LogNotifications,
        pepper: bytes,
        *,
        projections: Collection[str] | None = None,
        max_entries: int = 100_000,
        max_unknown_entries: int = 10_000,
        max_wait: float = 0.25,
        checkpoint_poll_interval: float = 0.01,
        tail_poll_interval: float = 0.5,
        max_tail_silence: float = 3.0,
        query_timeout: float = 2.0,
        log: LogReader | None = None,
    ) -> None:
        """``log``: where its tail reads the log (the process's ``SharedLogReads``; default: the
        store over ``pool``, a read of its own)."""
        if not pepper:
            raise ValueError("the pepper must not be empty")
        names = sorted(default_projection_names() if projections is None else projections)
        if not names:
            raise ValueError("the verifier must depend on at least one projection")
        self._notifications = notifications
        self._pepper = pepper
        self._reads = VerificationReads(pool, names, query_timeout=query_timeout)
        self._max_wait = max_wait
        self._tail_poll_interval = tail_poll_interval
        self._max_tail_silence = max_tail_silence
        self.metrics = VerifierMetrics()

        self._cache = EntryCache(max_entries=max_entries, max_unknown_entries=max_unknown_entries)
        self._invalidations = Invalidations()
        self._checkpoint = LOG_START  # highest projection checkpoint observed
        self._tail = CursorWaiters()
        self._tail_backoff = Backoff(0.1, 5.0)

        self._inflight: dict[str, asyncio.Task[Entry | Rejection]] = {}
        self._checkpoint_poll = CheckpointPoll(
            self._reads, interval=checkpoint_poll_interval, observe=self._observe_checkpoint, warn=self._warn
        )
        self._waiter: Waiter | None = None
        self._tail_store = HeartbeatReads(log if log is not None else PostgresEventStore(pool))
        self._follower = BackgroundTask("verifier-tail", self._follow)
        self._housekeeper = BackgroundTask(
            "verifier-housekeeping",
            lambda: periodically(self._housekeeping, what="token verifier housekeeping", interval=1.0),
        )
        self._started = False
        self._tail_was_alive = True
        self._last_stale_warning = -float("inf")
        self._suppressed_warnings = 0

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Starts following the log from its current head. Entries loaded from a read model that
        has not reached that head are not trusted (the events before it were not watched)."""
        if self._started:
            raise RuntimeError("the verifier is already started")
        self._waiter = self._notifications.waiter()
        head = await self._reads.head()
        self._tail.advance(head)
        self._tail.open()
        self._invalidations.pruned_upto = head
        self._tail_store.last_read = time.monotonic()
        self._started = True
        self._follower.start()
        self._housekeeper.start()

    async def stop(self) -> None:
        inflight = list(self._inflight.values())
        for task in inflight:
            task.cancel()
        await self._follower.stop()
        await self._housekeeper.stop()
        await self._checkpoint_poll.stop()
        for task in inflight:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._started = False
        self._tail.close()
        self._inflight.clear()
        if self._waiter is not None:
            self._notifications.forget(self._waiter)
            self._waiter = None

    @property
    def tail_cursor(self) -> LogCursor:
        """The last log position this verifier's tail has applied (a seam for tests that hold the
        tail back on purpose)."""
        return self._tail.reached

    @property
    def cache_size(self) -> int:
        """Entries held (known and unknown): a seam for the tests of the cache's bounds."""
        return len(self._cache)

    def tail_is_alive(self) -> bool:
        return (
            self._follower.running and time.monotonic() - self._tail_store.last_read <= self._max_tail_silence
        )

    async def wait_for(self, cursor: LogCursor, at_most: float) -> bool:
        """Waits until this verifier's tail has applied ``cursor`` (read-your-writes for the API);
        False after ``at_most`` seconds. Not needed when the writer called ``note_appended``."""
        return await self._tail.wait_for(cursor, at_most)

    # -- verification ----------------------------------------------------------------------------

    async def verify(self, presented: str, now: datetime) -> Principal | Rejection:
        """The principal the presented secret authenticates at ``now`` (timezone-aware), or why not."""
        return (await self.check(presented, now)).verdict

    async def check(self, presented: str, now: datetime) -> Verification:
        """``verify``, also naming the token and account a rejected secret belongs to (usage history)."""
        self._begin(now)
        if not is_well_formed(presented):
            return Verification(self._reject(Rejection.MALFORMED))
        return await self._check_hashed(secret_hash(presented, self._pepper), now)

    def hash_of(self, presented: str) -> str:
        """The stored form of a secret (HMAC under the pepper): what ``check_hash`` takes, so a
        door that keeps a session never keeps the secret itself."""
        return secret_hash(presented, self._pepper)

    async def check_hash(self, hashed: str, now: datetime) -> Verification:
        """``check`` for a secret known by its hash only (the console's session): the same cache,
        loads and verdict, so a revocation or a disabled account ends the session at once."""
        self._begin(now)
        return await self._check_hashed(hashed, now)

    def _begin(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        if not self._started:
            raise RuntimeError("the verifier is not started")
        self.metrics.verifications += 1

    async def _check_hashed(self, hashed: str, now: datetime) -> Verification:
        entry = self._lookup(hashed) if self.tail_is_alive() else None
        if entry is None:
            self.metrics.misses += 1
            metrics.VERIFIER_CACHE.labels("miss").inc()
            loaded = await self._load_once(hashed)
            if isinstance(loaded, Rejection):
                return Verification(self._reject(loaded))
            entry = loaded
        else:
            self.metrics.hits += 1
            metrics.VERIFIER_CACHE.labels("hit").inc()
        outcome = evaluate(entry, hashed, now)
        if isinstance(outcome, Rejection):
            known = entry.principal if outcome is not Rejection.UNKNOWN else None
            if known is None:
                return Verification(self._reject(outcome))
            return Verification(self._reject(outcome), known.token_id, known.account_id)
        self.metrics.accepted += 1
        metrics.VERIFICATIONS.labels("accepted", "none").inc()
        return Verification(outcome, outcome.token_id, outcome.account_id)

    def _reject(self, reason: Rejection) -> Rejection:
        self.metrics.rejections[reason] += 1
        metrics.VERIFICATIONS.labels("rejected", reason.value).inc()
        return reason

    def _lookup(self, hashed: str) -> Entry | None:
        return self._cache.lookup(hashed)

    async def _load_once(self, hashed: str) -> Entry | Rejection:
        """Concurrent misses for one hash share one load (which a cancelled caller does not cancel)."""
        task = self._inflight.get(hashed)
        if task is None:
            task = asyncio.create_task(self._load(hashed))
            self._inflight[hashed] = task
            task.add_done_callback(lambda _t: self._inflight.pop(hashed, None))
        return await asyncio.shield(task)

    async def _load(self, hashed: str) -> Entry | Rejection:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_wait
        waited_for_tail = False
        while True:
            try:
                entry = await self._reads.entry(hashed, self._invalidations.overlay)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.metrics.load_errors += 1
                self._warn("token verification could not read the read model (%s): rejecting", error)
                return Rejection.STALE
            self.metrics.loads += 1
            self._observe_checkpoint(entry.checkpoint)
            required = self._invalidations.required(entry)
            if entry.checkpoint >= required and entry.principal is None and not waited_for_tail:
                # Unknown as of C. If this node was notified of events its tail has not read yet
                # (a token created on another node a moment ago), let the tail read them once: an
                # issue of this very hash then makes it dirty and the read is retried below.
                notified = self._waiter.notified if self._waiter is not None else LOG_START
                if notified > self._tail.reached:
                    waited_for_tail = True
                    self.metrics.unknown_retries += 1
                    await self.wait_for(notified, max(0.0, deadline - loop.time()))
                    required = self._invalidations.required(entry)
            if entry.checkpoint >= required:
                self._cache.insert(entry)
                return entry
            self.metrics.stale_waits += 1
            if not await self._checkpoint_poll.reached(required, deadline):
                self._warn(
                    "the read model (checkpoint %s) is behind an event the token verifier has seen"
                    " (%s) after %.0f ms: rejecting (fail-closed)",
                    tuple(entry.checkpoint),
                    tuple(required),
                    self._max_wait * 1000,
                )
                return Rejection.STALE

    def _observe_checkpoint(self, checkpoint: LogCursor) -> None:
        if checkpoint > self._checkpoint:
            self._checkpoint = checkpoint

    # -- following the log -----------------------------------------------------------------------

    async def _follow(self) -> None:
        await keep_running(
            self._tail_session,
            what="the token verifier's log tail",
            backoff=self._tail_backoff,
            on_error=self._tail_failed,
        )

    def _tail_failed(self, _error: BaseException) -> None:
        self.metrics.tail_errors += 1

    async def _tail_session(self) -> bool:
        assert self._waiter is not None
        tail = LogTail(self._tail_store, self._waiter, poll_interval=self._tail_poll_interval)
        async for batch in tail.batches(self._tail.reached):
            for recorded in batch:
                self._apply(recorded.event, recorded.cursor)
            self.metrics.tail_events += len(batch)
            self._tail.advance(batch[-1].cursor)
            self._tail_backoff.reset()
        return False

    async def _housekeeping(self) -> None:
        """Forgets dirty cursors the projections have passed; reports a dead tail."""
        alive = self.tail_is_alive()
        if alive != self._tail_was_alive:
            if alive:
                _log.info("the token verifier's log tail is back: the cache is in use again")
            else:
                _log.warning(
                    "the token verifier's log tail has not read the log for %.1fs:"
                    " verifying against the database only",
                    self._max_tail_silence,
                )
            self._tail_was_alive = alive
        if self._invalidations.pending:
            try:
                self._observe_checkpoint(await self._reads.checkpoint())
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._warn("token verifier could not read projection checkpoints (%s)", error)
                return
        self._invalidations.prune(self._checkpoint)

    def note_appended(self, appends: Sequence[StreamAppend], result: AppendResult) -> None:
        """To be called by this node's writers right after a successful append: the verifier acts
        on the events at once instead of when its tail reads them, so a revocation is effective
        on this node before the command's response is sent."""
        new_events = [new_event for append in appends for new_event in append.events]
        for new_event, appended in zip(new_events, result.events, strict=True):
            self._apply(new_event.event, appended.cursor)

    def _apply(self, event: Event, cursor: LogCursor) -> None:
        effect = self._invalidations.apply(event, cursor)
        if isinstance(effect, Extended):
            if self._cache.move_expiry(effect.token_id, effect.expires_at):
                return
            # An extension to an earlier instant than this node holds (another node's older view):
            # do not guess how the read model resolves it; load it again once it has the event.
            effect = self._invalidations.token_changed(effect.token_id, cursor)
        self._drop(effect)

    def _drop(self, drop: Drop) -> None:
        if drop.everything:
            self.metrics.cache_clears += 1
        self.metrics.invalidations += self._cache.drop(drop)

    # -- sliding expiry --------------------------------------------------------------------------

    def extend_cached(self, token_id: str, expires_at: datetime) -> None:
        """This node has decided to extend the token (its ``token.extended`` is being appended):
        its cached entries, and entries loaded before the read model has the event, use the new
        expiry at once."""
        self._invalidations.extending(token_id, expires_at)
        self._cache.move_expiry(token_id, expires_at)

    def abandon_extension(self, token_id: str, expires_at: datetime) -> None:
        """The extension could not be recorded: forget it and reload the token from the read model."""
        self._drop(self._invalidations.abandon(token_id, expires_at))

    def _warn(self, message: str, *args: Any) -> None:
        """A rate-limited warning (at most one a second), so a database outage does not flood logs."""
        now = time.monotonic()
        if now - self._last_stale_warning < 1.0:
            self._suppressed_warnings += 1
            return
        if self._suppressed_warnings:
            message += " (%d similar warnings suppressed)"
            args = (*args, self._suppressed_warnings)
        self._last_stale_warning = now
        self._suppressed_warnings = 0
        _log.warning(message, *args)
