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

Expected projection behaviour: each projection commits its rows and its checkpoint together, and
advances its checkpoint past events it ignores (otherwise the minimum checkpoint stalls and
verifications of recently changed tokens fail closed).
"""

import asyncio
import contextlib
import heapq
import hmac
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from events import Event, LogCursor, RecordedEvent
from events import accounts as account_events
from events import teams as team_events
from events import tokens as token_events
from events.envelope import LOG_START
from events.organization import OrganizationCreated
from services.auth.principal import (
    DIRECT,
    TEAM_SOURCE_PREFIX,
    Principal,
    Rejection,
    RoleGrant,
    Verification,
)
from services.eventstore import PostgresEventStore
from services.eventstore.notifications import LogNotifications, Waiter
from services.eventstore.tail import LogTail
from services.ports import AppendResult, StreamAppend
from services.tokens.secrets import is_well_formed, secret_hash

_log = logging.getLogger(__name__)

READ_MODEL_TABLES = frozenset(
    {"accounts", "tokens", "token_secrets", "role_assignments", "teams", "team_members"}
)
"""The read-model tables (logical names; the views are ``rm_<name>``) the verification query reads."""

ACTIVE = "ACTIVE"
EXPIRED = "EXPIRED"

_roles_decoder = msgspec.json.Decoder(list[RoleGrant])

VERIFY_SQL = f"""
WITH checkpoint AS (
    SELECT coalesce(c.tx_id, 0) AS tx_id, coalesce(c.position, 0) AS position
    FROM unnest($2::text[]) AS wanted (name)
    LEFT JOIN projection_checkpoints c ON c.name = wanted.name
    ORDER BY 1, 2
    LIMIT 1
), secret AS (
    SELECT s.secret_hash, s.token_id, s.secret_version, s.valid_until, s.retired
    FROM rm_token_secrets s
    WHERE s.secret_hash = $1
), token AS (
    SELECT t.token_id, t.account_id, t.name, t.state, t.deleted, t.created_at, t.expires_at,
           t.max_expires_at, t.auto_extend_seconds, t.scopes, t.secret_version
    FROM rm_tokens t JOIN secret s ON t.token_id = s.token_id
), account AS (
    SELECT a.account_id, a.name, a.enabled, a.konnect_managed
    FROM rm_accounts a JOIN token t ON a.account_id = t.account_id
), roles AS (
    SELECT r.role_name, r.entity_id, r.entity_type_name, r.entity_region, '{DIRECT}' AS source
    FROM token t
    JOIN rm_role_assignments r ON r.holder_type = 'account' AND r.holder_id = t.account_id
    UNION ALL
    SELECT r.role_name, r.entity_id, r.entity_type_name, r.entity_region,
           '{TEAM_SOURCE_PREFIX}' || m.team_id::text AS source
    FROM token t
    JOIN rm_team_members m ON m.account_id = t.account_id
    JOIN rm_teams team ON team.team_id = m.team_id
    JOIN rm_role_assignments r ON r.holder_type = 'team' AND r.holder_id = m.team_id
)
SELECT checkpoint.tx_id AS checkpoint_tx_id, checkpoint.position AS checkpoint_position,
       secret.secret_hash, secret.secret_version, secret.valid_until, secret.retired,
       token.token_id, token.account_id, token.name AS token_name, token.state, token.deleted,
       token.created_at, token.expires_at, token.max_expires_at, token.auto_extend_seconds,
       token.scopes, token.secret_version AS current_secret_version,
       account.account_id IS NOT NULL AS account_exists, account.name AS account_name,
       account.enabled AS account_enabled, coalesce(account.konnect_managed, false) AS organization_admin,
       (SELECT coalesce(json_agg(json_build_object(
                    'role_name', roles.role_name, 'entity_id', roles.entity_id,
                    'entity_type_name', roles.entity_type_name, 'entity_region', roles.entity_region,
                    'source', roles.source)
                ORDER BY roles.source, roles.role_name, roles.entity_type_name, roles.entity_id), '[]')
        FROM roles)::text AS roles
FROM checkpoint
LEFT JOIN secret ON true
LEFT JOIN token ON true
LEFT JOIN account ON true
"""  # noqa: S608 (constants only)

CHECKPOINT_SQL = """
SELECT coalesce(c.tx_id, 0) AS tx_id, coalesce(c.position, 0) AS position
FROM unnest($1::text[]) AS wanted (name)
LEFT JOIN projection_checkpoints c ON c.name = wanted.name
ORDER BY 1, 2
LIMIT 1
"""

HEAD_SQL = """
SELECT tx_id::text::bigint AS tx_id, global_position
FROM events
WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY events.tx_id DESC, events.global_position DESC
LIMIT 1
"""


def default_projection_names() -> frozenset[str]:
    """Names of the projections that own the tables the verification query reads, from
    ``projections.catalogue``. Pass ``projections=`` explicitly where that catalogue is absent."""
    try:
        from projections.catalogue import ALL_PROJECTIONS
    except ImportError as error:
        raise RuntimeError(
            "projections.catalogue is not available: pass the projection names to TokenVerifier"
        ) from error
    names: set[str] = set()
    for projection in ALL_PROJECTIONS:
        tables = {str(t).removeprefix("rm_") for t in projection.tables}
        if tables & READ_MODEL_TABLES:
            names.add(str(projection.name))
    return frozenset(names)


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


@dataclass(slots=True)
class _Entry:
    """What the read model said about one secret hash, at ``checkpoint``. ``principal`` is None
    when the hash is unknown."""

    secret_hash: str
    checkpoint: LogCursor
    principal: Principal | None = None
    state: str = ""
    deleted: bool = False
    account_enabled: bool = False
    retired: bool = False
    valid_until: datetime | None = None
    versions_behind: int = 0
    """How many rotations the presented secret is behind the token's current one: 0 for the
    current secret, 1 for the one the latest rotation replaced (valid in its grace period only)."""


class _HeartbeatStore(PostgresEventStore):
    """The event store, remembering when a read of the log last succeeded (the tail's pulse)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool)
        self.last_read = -float("inf")

    async def read_all(self, after: LogCursor, limit: int = 1000) -> list[RecordedEvent]:
        events = await super().read_all(after, limit)
        self.last_read = time.monotonic()
        return events


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
    ) -> None:
        if not pepper:
            raise ValueError("the pepper must not be empty")
        names = sorted(default_projection_names() if projections is None else projections)
        if not names:
            raise ValueError("the verifier must depend on at least one projection")
        self._pool = pool
        self._notifications = notifications
        self._pepper = pepper
        self._projections = names
        self._max_entries = max_entries
        self._max_unknown_entries = max_unknown_entries
        self._max_wait = max_wait
        self._checkpoint_poll_interval = checkpoint_poll_interval
        self._tail_poll_interval = tail_poll_interval
        self._max_tail_silence = max_tail_silence
        self._query_timeout = query_timeout
        self.metrics = VerifierMetrics()

        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._unknown: OrderedDict[str, _Entry] = OrderedDict()
        self._by_token: dict[str, set[str]] = {}
        self._by_account: dict[str, set[str]] = {}

        self._dirty_tokens: dict[str, LogCursor] = {}
        self._dirty_accounts: dict[str, LogCursor] = {}
        self._dirty_hashes: dict[str, LogCursor] = {}
        self._dirty_global = LOG_START
        self._pruned_upto = LOG_START
        self._extensions: dict[str, tuple[LogCursor | None, datetime]] = {}
        """Sliding-expiry extensions the read model may not hold yet: token -> (cursor of the
        event, None while it is still being appended by this node; new expires_at)."""

        self._checkpoint = LOG_START  # highest projection checkpoint observed
        self._polled = LOG_START  # the checkpoint the latest poll read
        self._tail_cursor = LOG_START
        self._tail_waiters: list[tuple[LogCursor, int, asyncio.Future[None]]] = []
        self._tail_waiter_count = 0

        self._inflight: dict[str, asyncio.Task[_Entry | Rejection]] = {}
        self._tick: asyncio.Future[None] | None = None
        self._poller: asyncio.Task[None] | None = None
        self._waiter: Waiter | None = None
        self._tail_store = _HeartbeatStore(pool)
        self._tasks: list[asyncio.Task[None]] = []
        self._last_stale_warning = -float("inf")
        self._suppressed_warnings = 0

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Starts following the log from its current head. Entries loaded from a read model that
        has not reached that head are not trusted (the events before it were not watched)."""
        if self._tasks:
            raise RuntimeError("the verifier is already started")
        self._waiter = self._notifications.waiter()
        head = await self._fetch_head()
        self._tail_cursor = self._pruned_upto = head
        self._tail_store.last_read = time.monotonic()
        self._tasks = [
            asyncio.create_task(self._follow(), name="verifier-tail"),
            asyncio.create_task(self._housekeeping(), name="verifier-housekeeping"),
        ]

    async def stop(self) -> None:
        tasks = [*self._tasks, *self._inflight.values()]
        if self._poller is not None:
            tasks.append(self._poller)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._inflight.clear()
        if self._waiter is not None:
            self._notifications.forget(self._waiter)
            self._waiter = None

    @property
    def tail_cursor(self) -> LogCursor:
        """The last log position this verifier's tail has applied."""
        return self._tail_cursor

    @property
    def cache_size(self) -> int:
        return len(self._cache) + len(self._unknown)

    def tail_is_alive(self) -> bool:
        return (
            bool(self._tasks)
            and not self._tasks[0].done()
            and time.monotonic() - self._tail_store.last_read <= self._max_tail_silence
        )

    async def wait_for(self, cursor: LogCursor, at_most: float) -> bool:
        """Waits until this verifier's tail has applied ``cursor`` (read-your-writes for the API);
        False after ``at_most`` seconds. Not needed when the writer called ``note_appended``."""
        if self._tail_cursor >= cursor:
            return True
        reached: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tail_waiter_count += 1
        heapq.heappush(self._tail_waiters, (cursor, self._tail_waiter_count, reached))
        try:
            async with asyncio.timeout(at_most):
                await asyncio.shield(reached)
        except TimeoutError:
            return False
        return True

    def _tail_advanced(self) -> None:
        """Resolves the waiters the tail has reached (a heap by cursor: a batch wakes only those)."""
        while self._tail_waiters and self._tail_waiters[0][0] <= self._tail_cursor:
            _, _, reached = heapq.heappop(self._tail_waiters)
            if not reached.done():
                reached.set_result(None)

    # -- verification ----------------------------------------------------------------------------

    async def verify(self, presented: str, now: datetime) -> Principal | Rejection:
        """The principal the presented secret authenticates at ``now`` (timezone-aware), or why not."""
        return (await self.check(presented, now)).verdict

    async def check(self, presented: str, now: datetime) -> Verification:
        """``verify``, also naming the token and account a rejected secret belongs to (usage history)."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        if not self._tasks:
            raise RuntimeError("the verifier is not started")
        self.metrics.verifications += 1
        if not is_well_formed(presented):
            return Verification(self._reject(Rejection.MALFORMED))
        hashed = secret_hash(presented, self._pepper)
        entry = self._lookup(hashed) if self.tail_is_alive() else None
        if entry is None:
            self.metrics.misses += 1
            loaded = await self._load_once(hashed)
            if isinstance(loaded, Rejection):
                return Verification(self._reject(loaded))
            entry = loaded
        else:
            self.metrics.hits += 1
        outcome = self._evaluate(entry, hashed, now)
        if isinstance(outcome, Rejection):
            known = entry.principal if outcome is not Rejection.UNKNOWN else None
            if known is None:
                return Verification(self._reject(outcome))
            return Verification(self._reject(outcome), known.token_id, known.account_id)
        self.metrics.accepted += 1
        return Verification(outcome, outcome.token_id, outcome.account_id)

    def _reject(self, reason: Rejection) -> Rejection:
        self.metrics.rejections[reason] += 1
        return reason

    @staticmethod
    def _evaluate(entry: _Entry, hashed: str, now: datetime) -> Principal | Rejection:
        principal = entry.principal
        if principal is None or not hmac.compare_digest(entry.secret_hash, hashed):
            return Rejection.UNKNOWN
        if entry.deleted or (entry.state != ACTIVE and entry.state != EXPIRED):
            return Rejection.REVOKED
        if entry.state == EXPIRED:
            return Rejection.EXPIRED
        if not entry.account_enabled:
            return Rejection.DISABLED
        if principal.expires_at is not None and principal.expires_at <= now:
            return Rejection.EXPIRED
        if entry.retired:
            return Rejection.ROTATED_OUT
        if entry.valid_until is not None and entry.valid_until <= now:
            return Rejection.ROTATED_OUT
        if entry.versions_behind > 1:
            # Every rotation ends all secrets before the one it replaces, whatever their grace.
            return Rejection.ROTATED_OUT
        if entry.versions_behind and entry.valid_until is None:
            # A rotated-out secret without a grace period stopped at once (token.rotated).
            return Rejection.ROTATED_OUT
        return principal

    def _lookup(self, hashed: str) -> _Entry | None:
        entry = self._cache.get(hashed)
        if entry is not None:
            self._cache.move_to_end(hashed)
            return entry
        entry = self._unknown.get(hashed)
        if entry is not None:
            self._unknown.move_to_end(hashed)
        return entry

    async def _load_once(self, hashed: str) -> _Entry | Rejection:
        """Concurrent misses for one hash share one load (which a cancelled caller does not cancel)."""
        task = self._inflight.get(hashed)
        if task is None:
            task = asyncio.create_task(self._load(hashed))
            self._inflight[hashed] = task
            task.add_done_callback(lambda _t: self._inflight.pop(hashed, None))
        return await asyncio.shield(task)

    async def _load(self, hashed: str) -> _Entry | Rejection:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_wait
        waited_for_tail = False
        while True:
            try:
                entry = await self._fetch(hashed)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.metrics.load_errors += 1
                self._warn("token verification could not read the read model (%s): rejecting", error)
                return Rejection.STALE
            self.metrics.loads += 1
            self._observe_checkpoint(entry.checkpoint)
            required = self._required(entry)
            if entry.checkpoint >= required and entry.principal is None and not waited_for_tail:
                # Unknown as of C. If this node was notified of events its tail has not read yet
                # (a token created on another node a moment ago), let the tail read them once: an
                # issue of this very hash then makes it dirty and the read is retried below.
                notified = self._waiter.notified if self._waiter is not None else LOG_START
                if notified > self._tail_cursor:
                    waited_for_tail = True
                    self.metrics.unknown_retries += 1
                    await self.wait_for(notified, max(0.0, deadline - loop.time()))
                    required = self._required(entry)
            if entry.checkpoint >= required:
                self._insert(entry)
                return entry
            self.metrics.stale_waits += 1
            if not await self._wait_for_checkpoint(required, deadline):
                self._warn(
                    "the read model (checkpoint %s) is behind an event the token verifier has seen"
                    " (%s) after %.0f ms: rejecting (fail-closed)",
                    tuple(entry.checkpoint),
                    tuple(required),
                    self._max_wait * 1000,
                )
                return Rejection.STALE

    def _required(self, entry: _Entry) -> LogCursor:
        """The checkpoint a read must have reached for ``entry`` to be trusted now."""
        required = max(self._pruned_upto, self._dirty_hashes.get(entry.secret_hash, LOG_START))
        principal = entry.principal
        if principal is not None:
            required = max(
                required,
                self._dirty_global,
                self._dirty_tokens.get(principal.token_id, LOG_START),
                self._dirty_accounts.get(principal.account_id, LOG_START),
            )
        return required

    def _insert(self, entry: _Entry) -> None:
        principal = entry.principal
        if principal is None:
            self._unknown[entry.secret_hash] = entry
            while len(self._unknown) > self._max_unknown_entries:
                self._unknown.popitem(last=False)
            return
        self._remove(entry.secret_hash)
        self._cache[entry.secret_hash] = entry
        self._by_token.setdefault(principal.token_id, set()).add(entry.secret_hash)
        self._by_account.setdefault(principal.account_id, set()).add(entry.secret_hash)
        while len(self._cache) > self._max_entries:
            self._remove(next(iter(self._cache)))

    def _remove(self, hashed: str) -> None:
        self._unknown.pop(hashed, None)
        entry = self._cache.pop(hashed, None)
        if entry is None or entry.principal is None:
            return
        for index, key in (
            (self._by_token, entry.principal.token_id),
            (self._by_account, entry.principal.account_id),
        ):
            hashes = index.get(key)
            if hashes is not None:
                hashes.discard(hashed)
                if not hashes:
                    del index[key]

    # -- reading the read model ------------------------------------------------------------------

    async def _fetch(self, hashed: str) -> _Entry:
        async with asyncio.timeout(self._query_timeout):
            row = await self._pool.fetchrow(VERIFY_SQL, hashed, self._projections)
        assert row is not None
        return self._entry_from_row(hashed, row)

    def _entry_from_row(self, hashed: str, row: asyncpg.Record) -> _Entry:
        checkpoint = LogCursor(row["checkpoint_tx_id"], row["checkpoint_position"])
        if row["secret_hash"] is None or row["token_id"] is None:
            return _Entry(hashed, checkpoint)
        token_id = str(row["token_id"])
        expires_at: datetime | None = row["expires_at"]
        max_expires_at: datetime | None = row["max_expires_at"]
        extension = self._extensions.get(token_id)
        if extension is not None and expires_at is not None:
            cursor, extended_to = extension
            if cursor is None or cursor > checkpoint:
                expires_at = max(expires_at, extended_to)
        if max_expires_at is not None:
            expires_at = max_expires_at if expires_at is None else min(expires_at, max_expires_at)
        principal = Principal(
            token_id=token_id,
            account_id=str(row["account_id"]),
            account_name=row["account_name"] or "",
            token_name=row["token_name"],
            scopes=list(row["scopes"]) if row["scopes"] is not None else None,
            roles=_roles_decoder.decode(row["roles"]),
            organization_admin=row["organization_admin"],
            issued_at=row["created_at"],
            expires_at=expires_at,
            secret_version=row["secret_version"],
            auto_extend_seconds=row["auto_extend_seconds"],
            max_expires_at=max_expires_at,
        )
        return _Entry(
            secret_hash=row["secret_hash"],
            checkpoint=checkpoint,
            principal=principal,
            state=row["state"],
            deleted=bool(row["deleted"]),
            account_enabled=bool(row["account_exists"] and row["account_enabled"]),
            retired=bool(row["retired"]),
            valid_until=row["valid_until"],
            versions_behind=max(0, row["current_secret_version"] - row["secret_version"]),
        )

    async def _fetch_checkpoint(self) -> LogCursor:
        async with asyncio.timeout(self._query_timeout):
            row = await self._pool.fetchrow(CHECKPOINT_SQL, self._projections)
        assert row is not None
        return LogCursor(row["tx_id"], row["position"])

    async def _fetch_head(self) -> LogCursor:
        row = await self._pool.fetchrow(HEAD_SQL)
        return LOG_START if row is None else LogCursor(row["tx_id"], row["global_position"])

    def _observe_checkpoint(self, checkpoint: LogCursor) -> None:
        if checkpoint > self._checkpoint:
            self._checkpoint = checkpoint

    def _prune(self, checkpoint: LogCursor) -> None:
        """Forgets what a read at ``checkpoint`` (or later) already reflects."""
        pruned = False
        for dirty in (self._dirty_tokens, self._dirty_accounts, self._dirty_hashes):
            stale = [key for key, cursor in dirty.items() if cursor <= checkpoint]
            for key in stale:
                del dirty[key]
            pruned = pruned or bool(stale)
        if pruned:
            self._pruned_upto = max(self._pruned_upto, checkpoint)
        applied = [
            t for t, (cursor, _) in self._extensions.items() if cursor is not None and cursor <= checkpoint
        ]
        for token_id in applied:
            del self._extensions[token_id]

    async def _wait_for_checkpoint(self, target: LogCursor, deadline: float) -> bool:
        """Waits until a fresh read of the projections' checkpoint shows ``target`` reached; False
        at the deadline. All waiters share one poll of the checkpoint table."""
        loop = asyncio.get_running_loop()
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                async with asyncio.timeout(remaining):
                    await asyncio.shield(self._next_tick())
            except TimeoutError:
                return False
            if self._polled >= target:
                return True

    def _next_tick(self) -> asyncio.Future[None]:
        if self._tick is None:
            self._tick = asyncio.get_running_loop().create_future()
            if self._poller is None or self._poller.done():
                self._poller = asyncio.create_task(self._poll_checkpoint(), name="verifier-checkpoint")
        return self._tick

    async def _poll_checkpoint(self) -> None:
        while self._tick is not None:
            await asyncio.sleep(self._checkpoint_poll_interval)
            tick, self._tick = self._tick, None
            try:
                self._polled = await self._fetch_checkpoint()
                self._observe_checkpoint(self._polled)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._warn("token verifier could not read projection checkpoints (%s)", error)
            finally:
                if not tick.done():
                    tick.set_result(None)

    # -- following the log -----------------------------------------------------------------------

    async def _follow(self) -> None:
        assert self._waiter is not None
        tail = LogTail(self._tail_store, self._waiter, poll_interval=self._tail_poll_interval)
        delay = 0.1
        while True:
            try:
                async for batch in tail.batches(self._tail_cursor):
                    for recorded in batch:
                        self._apply(recorded.event, recorded.cursor)
                    self._tail_cursor = batch[-1].cursor
                    self.metrics.tail_events += len(batch)
                    self._tail_advanced()
                    delay = 0.1
            except asyncio.CancelledError:
                raise
            except Exception:
                self.metrics.tail_errors += 1
                _log.exception("the token verifier's log tail failed; retrying in %.1fs", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _housekeeping(self, interval: float = 1.0) -> None:
        """Forgets dirty cursors the projections have passed; reports a dead tail."""
        was_alive = True
        while True:
            await asyncio.sleep(interval)
            alive = self.tail_is_alive()
            if alive != was_alive:
                if alive:
                    _log.info("the token verifier's log tail is back: the cache is in use again")
                else:
                    _log.warning(
                        "the token verifier's log tail has not read the log for %.1fs:"
                        " verifying against the database only",
                        self._max_tail_silence,
                    )
                was_alive = alive
            if self._dirty_tokens or self._dirty_accounts or self._dirty_hashes or self._extensions:
                try:
                    self._observe_checkpoint(await self._fetch_checkpoint())
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    self._warn("token verifier could not read projection checkpoints (%s)", error)
                    continue
            self._prune(self._checkpoint)

    def note_appended(self, appends: Sequence[StreamAppend], result: AppendResult) -> None:
        """To be called by this node's writers right after a successful append: the verifier acts
        on the events at once instead of when its tail reads them, so a revocation is effective
        on this node before the command's response is sent."""
        new_events = [new_event for append in appends for new_event in append.events]
        self.note_events((n.event, a.cursor) for n, a in zip(new_events, result.events, strict=True))

    def note_events(self, events: Iterable[tuple[Event, LogCursor]]) -> None:
        for event, cursor in events:
            self._apply(event, cursor)

    # -- what each event invalidates -------------------------------------------------------------

    def _apply(self, event: Event, cursor: LogCursor) -> None:
        match event:
            case (
                token_events.TokenUsed() | token_events.TokenExpiringSoon() | token_events.TokenRotationDue()
            ):
                pass
            case token_events.TokenExtended(token_id=token_id, expires_at=expires_at):
                self._extended(token_id, expires_at, cursor)
            case token_events.TokenIssued(secret_hash=hashed, token_id=token_id):
                self._dirty_hash(hashed, cursor)
                self._invalidate_token(token_id, cursor)
            case token_events.TokenRotated(secret_hash=hashed, token_id=token_id):
                self._dirty_hash(hashed, cursor)
                self._invalidate_token(token_id, cursor)
            case (
                token_events.TokenRenamed(token_id=token_id)
                | token_events.TokenSecretRetired(token_id=token_id)
                | token_events.TokenRevoked(token_id=token_id)
                | token_events.TokenDeleted(token_id=token_id)
                | token_events.TokenExpired(token_id=token_id)
            ):
                self._invalidate_token(token_id, cursor)
            case account_events.AccountCreated() | team_events.TeamCreated() | team_events.TeamUpdated():
                pass
            case (
                account_events.AccountUpdated(account_id=account_id)
                | account_events.AccountDisabled(account_id=account_id)
                | account_events.AccountEnabled(account_id=account_id)
                | account_events.AccountDeleted(account_id=account_id)
                | account_events.AccountRoleAssigned(account_id=account_id)
                | account_events.AccountRoleUnassigned(account_id=account_id)
                | team_events.TeamMemberAdded(account_id=account_id)
                | team_events.TeamMemberRemoved(account_id=account_id)
            ):
                self._invalidate_account(account_id, cursor)
            case (
                team_events.TeamRoleAssigned() | team_events.TeamRoleUnassigned() | team_events.TeamDeleted()
            ):
                self._invalidate_all(cursor)
            case OrganizationCreated():
                pass
            case _:
                # An event this code does not know to be harmless: assume it changes anything.
                self._invalidate_all(cursor)

    def _dirty_hash(self, hashed: str, cursor: LogCursor) -> None:
        self._dirty_hashes[hashed] = max(self._dirty_hashes.get(hashed, LOG_START), cursor)
        self._unknown.pop(hashed, None)

    def _invalidate_token(self, token_id: str, cursor: LogCursor) -> None:
        self._dirty_tokens[token_id] = max(self._dirty_tokens.get(token_id, LOG_START), cursor)
        self._drop(self._by_token.get(token_id))

    def _invalidate_account(self, account_id: str, cursor: LogCursor) -> None:
        self._dirty_accounts[account_id] = max(self._dirty_accounts.get(account_id, LOG_START), cursor)
        self._drop(self._by_account.get(account_id))

    def _invalidate_all(self, cursor: LogCursor) -> None:
        self._dirty_global = max(self._dirty_global, cursor)
        self.metrics.cache_clears += 1
        self._cache.clear()
        self._unknown.clear()
        self._by_token.clear()
        self._by_account.clear()

    def _drop(self, hashes: set[str] | None) -> None:
        for hashed in list(hashes or ()):
            self._remove(hashed)
            self.metrics.invalidations += 1

    # -- sliding expiry --------------------------------------------------------------------------

    def extend_cached(self, token_id: str, expires_at: datetime) -> None:
        """This node has decided to extend the token (its ``token.extended`` is being appended):
        its cached entries, and entries loaded before the read model has the event, use the new
        expiry at once."""
        current = self._extensions.get(token_id)
        if current is None or expires_at > current[1]:
            self._extensions[token_id] = (None, expires_at)
        self._move_expiry(token_id, expires_at)

    def abandon_extension(self, token_id: str, expires_at: datetime) -> None:
        """The extension could not be recorded: forget it and reload the token from the read model."""
        current = self._extensions.get(token_id)
        if current is not None and current[0] is None and current[1] == expires_at:
            del self._extensions[token_id]
        self._drop(self._by_token.get(token_id))

    def _extended(self, token_id: str, expires_at: datetime, cursor: LogCursor) -> None:
        current = self._extensions.get(token_id)
        if current is None or expires_at >= current[1]:
            self._extensions[token_id] = (cursor, expires_at)
        elif current[0] is not None and cursor > current[0]:
            self._extensions[token_id] = (cursor, current[1])
        if not self._move_expiry(token_id, expires_at):
            # An extension to an earlier instant than this node holds (another node's older view):
            # do not guess how the read model resolves it; load it again once it has the event.
            self._invalidate_token(token_id, cursor)

    def _move_expiry(self, token_id: str, expires_at: datetime) -> bool:
        """Pushes cached expiries forward to ``expires_at`` (within ``max_expires_at``). False when
        a cached entry already expires later."""
        consistent = True
        for hashed in self._by_token.get(token_id, ()):
            entry = self._cache[hashed]
            principal = entry.principal
            if principal is None or principal.expires_at is None:
                continue
            target = expires_at
            if principal.max_expires_at is not None:
                target = min(target, principal.max_expires_at)
            if target > principal.expires_at:
                entry.principal = msgspec.structs.replace(principal, expires_at=target)
            elif target < principal.expires_at:
                consistent = False
        return consistent

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
