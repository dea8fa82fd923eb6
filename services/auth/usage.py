"""Recording token use off the hot path: every verification in the usage log, ``token.used`` and
sliding expiry (``token.extended``) in the event log.

``UsageRecorder.record_verification`` (and ``record``, its shortcut for an accepted principal) is
synchronous and never touches the database. Every verification, accepted or rejected, goes to the
usage log (``services.auth.usage_log``: a bounded buffer stored with COPY) when the recorder has
one. A genuine token (accepted, or refused only for lack of a right: ``out_of_scope`` or
``no_right``) also counts as a use: ``token.used`` throttled to one event per token per
``throttle_seconds`` (per process), buffered in a bounded queue (full: the use is dropped and
counted), and sliding expiry. A background task stores the usage log's buffer and then sends the
buffered uses and extensions as ONE command, ``RecordTokenUsage`` (``services.tokens.commands``),
through the dispatcher as tokenledger itself (``USAGE``), every ``flush_interval`` seconds
(``TOKENLEDGER_USAGE_FLUSH_SECONDS``), and once more on ``stop``. Its handler appends the batch in
one ``append_many``; the recorder never calls the event store itself.

``last_used_at`` (tokens read model) stays derived from ``token.used``, which is now a throttled
summary of the usage log: both come from the same call, for the same verifications, and the log
is stored first in each flush. Why not read ``max(occurred_at)`` from the usage log instead: the
event keeps ``last_used_at`` in the replayable event log (a read-model rebuild or an as-of replay
needs nothing else), token lists need no per-row lookup into a high-volume table, and the usage
log may later be given a retention period without losing ``last_used_at``. The price is its
precision: within ``throttle_seconds`` (one minute); the usage endpoint has the exact timeline.

Each event id is derived from its content (``services.tokens.usage_model.used`` / ``extended``: uuid5 of
the token id and the use time, or of the token id and the new expiry), and a flush the database
failed retries exactly the same batch before taking anything new, so a flush whose commit
succeeded but whose answer was lost is recognised by the event store as a retry and never
duplicates.

What the client chose and ``token.used`` carries (``operation``, ``client_address``,
``user_agent``) goes through ``services.client_text.recordable`` as in the usage log, so it is
always storable. A batch the event store refuses (``InvalidAppend``, or ids partly stored already:
``DuplicateEventId``) is sent again use by use and extension by extension: a refused one is
dropped, logged and counted (``metrics.refused``), and every other use and extension in the batch
is still recorded.

Sliding expiry is the token model's decision (``services.tokens.usage_model.extension``), taken here on
the verifier's view of the token and this node's pending extension. The verifier's cache takes the
new expiry at once (``extend_cached``), and the flusher is woken so other nodes learn of it within
milliseconds.
"""

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from follower.worker import BackgroundTask, periodically
from services.auth.principal import Principal, Verification
from services.auth.usage_log import MAX_CLIENT_ADDRESS, MAX_OPERATION, MAX_USER_AGENT, UsageLog
from services.authorization import SystemActor
from services.client_text import recordable
from services.commands import CommandContext
from services.dispatch import Dispatcher
from services.ports import AppendResult, DuplicateEventId, InvalidAppend, StreamAppend
from services.tokens import usage_model
from services.tokens.commands import RecordTokenUsage, TokenExtension, TokenUse
from services.tokens.handlers import RecordedUsage

_log = logging.getLogger(__name__)

USAGE = SystemActor("system:usage")
"""tokenledger recording its tokens' use."""


class ExpiryCache(Protocol):
    """What the recorder tells the verifier (``TokenVerifier`` implements it)."""

    def extend_cached(self, token_id: str, expires_at: datetime) -> None: ...

    def abandon_extension(self, token_id: str, expires_at: datetime) -> None: ...

    def note_appended(self, appends: Sequence[StreamAppend], result: AppendResult) -> None: ...


@dataclass
class UsageMetrics:
    recorded: int = 0
    throttled: int = 0
    dropped: int = 0
    extensions: int = 0
    flushes: int = 0
    flushed_events: int = 0
    flush_errors: int = 0
    refused: int = 0
    """Uses and extensions the event store refused (``InvalidAppend``), dropped so the rest are
    recorded."""


class UsageRecorder:
    """Buffers and stores the usage log (when given one), and sends ``token.used`` /
    ``token.extended`` through ``dispatcher``. ``start()`` before use, ``stop()`` (which flushes)
    at the end."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        expiry: ExpiryCache | None = None,
        log: UsageLog | None = None,
        throttle_seconds: float = 60.0,
        flush_interval: float = 1.0,
        max_pending: int = 10_000,
    ) -> None:
        self._dispatcher = dispatcher
        self._expiry = expiry
        self._log = log
        self._throttle = timedelta(seconds=throttle_seconds)
        self._max_pending = max_pending
        self.metrics = UsageMetrics()
        self._uses: list[TokenUse] = []
        self._extensions: dict[str, TokenExtension] = {}
        self._last_recorded: dict[str, datetime] = {}
        self._latest: datetime | None = None
        self._batch: RecordTokenUsage | None = None
        """The batch being sent; after a failure, retried as it is before anything new."""
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._flusher = BackgroundTask(
            "usage-recorder",
            lambda: periodically(
                self.flush, what="recording token usage", interval=flush_interval, wake=self._wake
            ),
        )

    @property
    def log(self) -> UsageLog | None:
        return self._log

    # -- recording (synchronous, never blocks) ---------------------------------------------------

    def record_verification(
        self,
        verification: Verification,
        now: datetime,
        operation: str,
        *,
        presented: str = "",
        client_address: str | None = None,
        user_agent: str | None = None,
        refusal: str | None = None,
    ) -> None:
        """Notes one verification at ``now``: in the usage log, and as a use of the token when it
        was genuine. ``presented`` is only hashed, and only when it names no token; ``refusal``
        says why a genuine token was refused a right (``usage_log.REFUSALS``)."""
        if self._log is not None:
            self._log.append(
                verification,
                now,
                operation,
                presented=presented,
                client_address=client_address,
                user_agent=user_agent,
                refusal=refusal,
            )
        if isinstance(verification.verdict, Principal):
            self._note_use(verification.verdict, now, operation, client_address, user_agent)

    def record_refused_exchange(
        self,
        now: datetime,
        reason: str,
        *,
        presented: str,
        account_id: str | None = None,
        credential_id: str | None = None,
        issuer: str | None = None,
        client_address: str | None = None,
        user_agent: str | None = None,
    ) -> None:
        """Notes a refused token exchange in the usage log (``UsageLog.append_refused_exchange``);
        it is no use of any token."""
        if self._log is not None:
            self._log.append_refused_exchange(
                now,
                reason,
                presented=presented,
                account_id=account_id,
                credential_id=credential_id,
                issuer=issuer,
                client_address=client_address,
                user_agent=user_agent,
            )

    def record(
        self,
        principal: Principal,
        now: datetime,
        operation: str,
        client_address: str | None = None,
        user_agent: str | None = None,
    ) -> None:
        """Notes an accepted use of ``principal``'s token at ``now`` (timezone-aware)."""
        self.record_verification(
            Verification(principal, principal.token_id, principal.account_id),
            now,
            operation,
            client_address=client_address,
            user_agent=user_agent,
        )

    def _note_use(
        self,
        principal: Principal,
        now: datetime,
        operation: str,
        client_address: str | None,
        user_agent: str | None,
    ) -> None:
        self._maybe_extend(principal, now)
        token_id = principal.token_id
        last = self._last_recorded.get(token_id)
        if last is not None and now - last < self._throttle:
            self.metrics.throttled += 1
            return
        if len(self._uses) >= self._max_pending:
            self.metrics.dropped += 1
            return
        self._last_recorded[token_id] = now
        self._latest = now if self._latest is None else max(self._latest, now)
        use = TokenUse(
            token_id=token_id,
            account_id=principal.account_id,
            used_at=now,
            operation=recordable(operation, MAX_OPERATION) or "",
            client_address=recordable(client_address, MAX_CLIENT_ADDRESS),
            user_agent=recordable(user_agent, MAX_USER_AGENT),
        )
        self._uses.append(use)
        self.metrics.recorded += 1

    def _maybe_extend(self, principal: Principal, now: datetime) -> None:
        pending = self._extensions.get(principal.token_id)
        current = principal.expires_at
        if pending is not None and current is not None:
            current = max(current, pending.expires_at)
        target = usage_model.extension(current, principal.max_expires_at, principal.auto_extend_seconds, now)
        if target is None:
            return
        if pending is None and len(self._extensions) >= self._max_pending:
            self.metrics.dropped += 1
            return
        self._extensions[principal.token_id] = TokenExtension(
            token_id=principal.token_id, account_id=principal.account_id, expires_at=target, decided_at=now
        )
        self.metrics.extensions += 1
        if self._expiry is not None:
            self._expiry.extend_cached(principal.token_id, target)
        self._wake.set()  # other nodes should learn of a new expiry promptly

    # -- flushing --------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._flusher.running:
            raise RuntimeError("the usage recorder is already started")
        self._flusher.start()

    async def stop(self, *, attempts: int = 3) -> None:
        """Stops the background task and flushes what is buffered (a few attempts)."""
        await self._flusher.stop()
        if self._log is not None:
            await self._log.close(attempts=attempts)
        for _ in range(attempts):
            if not (self._batch or self._uses or self._extensions):
                return
            await self._flush_events()
        lost = len(self._uses) + len(self._extensions) + _size(self._batch)
        if lost:
            _log.warning("stopping with %d usage event(s) not recorded", lost)

    async def flush(self) -> bool:
        """Stores the usage log's buffer, then sends the buffered uses and extensions. True when
        nothing is left over from this call."""
        logged = await self._log.flush() if self._log is not None else True
        return await self._flush_events() and logged

    async def _flush_events(self) -> bool:
        """Sends the retained batch, or else everything buffered, as one command.
        True when nothing is left over from this call."""
        async with self._lock:
            if self._batch is None:
                self._batch = self._take()
            batch = self._batch
            if not _size(batch):
                self._batch = None
                return True
            try:
                recorded = await self._send(batch)
            except (DuplicateEventId, InvalidAppend):
                # Some of these events are stored already (a lost answer, or a twin from another
                # node with the same id), or one is refused: record them one by one, skipping what
                # is there and dropping what is refused, so no event blocks the others.
                return await self._send_one_by_one(batch)
            except Exception as error:
                self.metrics.flush_errors += 1
                _log.warning("could not record token usage (%s); retrying", error)
                return False
            self._done(recorded)
            self._batch = None
            return True

    async def _send(self, batch: RecordTokenUsage) -> RecordedUsage:
        ctx = CommandContext(now=datetime.now(UTC), actor=USAGE.name)
        outcome = await self._dispatcher.dispatch(batch, USAGE, ctx)
        recorded: RecordedUsage = outcome.state
        return recorded

    async def _send_one_by_one(self, batch: RecordTokenUsage) -> bool:
        singles = [RecordTokenUsage(uses=(use,)) for use in batch.uses]
        singles += [RecordTokenUsage(extensions=(extension,)) for extension in batch.extensions]
        remaining: list[RecordTokenUsage] = []
        for single in singles:
            try:
                recorded = await self._send(single)
            except DuplicateEventId:
                continue
            except InvalidAppend as refusal:
                self.metrics.refused += 1
                _log.error("usage event refused by the event store, dropped (%s): %s", refusal, ascii(single))
                self._abandon(single)
            except Exception as error:
                self.metrics.flush_errors += 1
                _log.warning("could not record token usage (%s); retrying", error)
                remaining.append(single)
            else:
                self._done(recorded)
        self._batch = (
            RecordTokenUsage(
                uses=tuple(use for single in remaining for use in single.uses),
                extensions=tuple(extension for single in remaining for extension in single.extensions),
            )
            if remaining
            else None
        )
        return not remaining

    def _take(self) -> RecordTokenUsage:
        """Turns the buffers into one batch and empties them."""
        batch = RecordTokenUsage(uses=tuple(self._uses), extensions=tuple(self._extensions.values()))
        self._uses = []
        self._extensions = {}
        self._forget_old_throttles()
        return batch

    def _forget_old_throttles(self) -> None:
        if self._latest is None:
            return
        horizon = self._latest - self._throttle
        old = [token for token, at in self._last_recorded.items() if at <= horizon]
        for token in old:
            del self._last_recorded[token]

    def _done(self, recorded: RecordedUsage) -> None:
        if recorded.result is None:
            return
        self.metrics.flushes += 1
        self.metrics.flushed_events += len(recorded.result.events)
        if self._expiry is not None:
            self._expiry.note_appended(recorded.appends, recorded.result)

    def _abandon(self, batch: RecordTokenUsage) -> None:
        if self._expiry is None:
            return
        for extension in batch.extensions:
            self._expiry.abandon_extension(extension.token_id, extension.expires_at)


def _size(batch: RecordTokenUsage | None) -> int:
    return 0 if batch is None else len(batch.uses) + len(batch.extensions)
