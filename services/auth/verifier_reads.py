"""The verifier's reads of the read model and the log: ONE statement per load (``VERIFY_SQL``: the
secret, token and account rows, the roles direct and through teams, and the lowest checkpoint of the
projections those rows come from, all in one snapshot), the projections' checkpoint (polled once for
every waiting load: ``CheckpointPoll``), the log's head, and the log itself for the tail
(``HeartbeatStore`` remembers when a read last succeeded).
"""

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import datetime

import asyncpg
import msgspec

from events import LogCursor, RecordedEvent
from events.envelope import LOG_START
from services.auth.evaluation import Entry
from services.auth.principal import DIRECT, TEAM_SOURCE_PREFIX, Principal, RoleGrant
from services.eventstore.shared_reads import LogReader

READ_MODEL_TABLES = frozenset(
    {"accounts", "tokens", "token_secrets", "role_assignments", "teams", "team_members"}
)
"""The read-model tables (logical names; the views are ``rm_<name>``) the verification query reads."""

_roles_decoder = msgspec.json.Decoder(tuple[RoleGrant, ...])

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
    SELECT a.account_id, a.name, a.enabled, a.konnect_managed, a.expires_at
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
       account.enabled AS account_enabled, account.expires_at AS account_expires_at,
       coalesce(account.konnect_managed, false) AS organization_admin,
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


Overlay = Callable[[str, LogCursor], datetime | None]
"""token id, checkpoint of the row -> an expiry the row should show instead, when later."""


class VerificationReads:
    """The queries; the per-verification ones are bounded by ``query_timeout``."""

    def __init__(self, pool: asyncpg.Pool, projections: list[str], *, query_timeout: float) -> None:
        self._pool = pool
        self._projections = projections
        self._query_timeout = query_timeout

    async def entry(self, hashed: str, overlay: Overlay) -> Entry:
        async with asyncio.timeout(self._query_timeout):
            row = await self._pool.fetchrow(VERIFY_SQL, hashed, self._projections)
        assert row is not None
        return entry_from_row(hashed, row, overlay)

    async def checkpoint(self) -> LogCursor:
        async with asyncio.timeout(self._query_timeout):
            row = await self._pool.fetchrow(CHECKPOINT_SQL, self._projections)
        assert row is not None
        return LogCursor(row["tx_id"], row["position"])

    async def head(self) -> LogCursor:
        row = await self._pool.fetchrow(HEAD_SQL)
        return LOG_START if row is None else LogCursor(row["tx_id"], row["global_position"])


def entry_from_row(hashed: str, row: asyncpg.Record, overlay: Overlay) -> Entry:
    checkpoint = LogCursor(row["checkpoint_tx_id"], row["checkpoint_position"])
    if row["secret_hash"] is None or row["token_id"] is None:
        return Entry(hashed, checkpoint)
    token_id = str(row["token_id"])
    expires_at: datetime | None = row["expires_at"]
    max_expires_at: datetime | None = row["max_expires_at"]
    extended_to = overlay(token_id, checkpoint)
    if extended_to is not None and expires_at is not None:
        expires_at = max(expires_at, extended_to)
    if max_expires_at is not None:
        expires_at = max_expires_at if expires_at is None else min(expires_at, max_expires_at)
    principal = Principal(
        token_id=token_id,
        account_id=str(row["account_id"]),
        account_name=row["account_name"] or "",
        token_name=row["token_name"],
        scopes=tuple(row["scopes"]) if row["scopes"] is not None else None,
        roles=_roles_decoder.decode(row["roles"]),
        organization_admin=row["organization_admin"],
        issued_at=row["created_at"],
        expires_at=expires_at,
        secret_version=row["secret_version"],
        auto_extend_seconds=row["auto_extend_seconds"],
        max_expires_at=max_expires_at,
    )
    return Entry(
        secret_hash=row["secret_hash"],
        checkpoint=checkpoint,
        principal=principal,
        state=row["state"],
        deleted=bool(row["deleted"]),
        account_enabled=bool(row["account_exists"] and row["account_enabled"]),
        account_expires_at=row["account_expires_at"],
        retired=bool(row["retired"]),
        valid_until=row["valid_until"],
        versions_behind=max(0, row["current_secret_version"] - row["secret_version"]),
    )


class CheckpointPoll:
    """Waits for the projections' checkpoint to reach a cursor, every waiter sharing one poll of the
    checkpoint table (one query per ``interval`` however many loads wait)."""

    def __init__(
        self,
        reads: VerificationReads,
        *,
        interval: float,
        observe: Callable[[LogCursor], None],
        warn: Callable[..., None],
    ) -> None:
        self._reads = reads
        self._interval = interval
        self._observe = observe
        self._warn = warn
        self._polled = LOG_START  # the checkpoint the latest poll read
        self._tick: asyncio.Future[None] | None = None
        self._poller: asyncio.Task[None] | None = None

    async def reached(self, target: LogCursor, deadline: float) -> bool:
        """Waits until a fresh read of the projections' checkpoint shows ``target`` reached; False
        at the deadline (event-loop time)."""
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

    async def stop(self) -> None:
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller

    def _next_tick(self) -> asyncio.Future[None]:
        if self._tick is None:
            self._tick = asyncio.get_running_loop().create_future()
            if self._poller is None or self._poller.done():
                self._poller = asyncio.create_task(self._poll(), name="verifier-checkpoint")
        return self._tick

    async def _poll(self) -> None:
        while self._tick is not None:
            await asyncio.sleep(self._interval)
            tick, self._tick = self._tick, None
            try:
                self._polled = await self._reads.checkpoint()
                self._observe(self._polled)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._warn("token verifier could not read projection checkpoints (%s)", error)
            finally:
                if not tick.done():
                    tick.set_result(None)


class HeartbeatReads:
    """Reads of the log (the process's shared reads), remembering when one last succeeded (the tail's
    pulse)."""

    def __init__(self, reader: LogReader) -> None:
        self._reader = reader
        self.last_read = -float("inf")

    async def read_all(self, after: LogCursor, limit: int = 1000) -> list[RecordedEvent]:
        events = await self._reader.read_all(after, limit)
        self.last_read = time.monotonic()
        return events
