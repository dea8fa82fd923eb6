"""How fast the read models rebuild: ``python -m bench.rebuild [--events N]`` (default 1,000,000).

Generates a realistic log (accounts created, updated, disabled and deleted; tokens issued, renamed,
rotated, extended, used a lot, revoked, expired and deleted; role assignments; teams and members)
into a fresh database with COPY (valid rows: contiguous stream versions, ``data`` from
``events.encode_event``, ``tx_id`` defaulted, one transaction per 50,000 events), then measures:

a. raw read: the events in log order through a server-side cursor, no decoding;
b. decoding only: turning those rows into ``RecordedEvent`` (``services.eventstore.rows``, what
   ``PostgresEventStore.read_all`` does); plus ``read_all`` itself in batches of 10,000 (read and
   decode, what a build consumes);
c. building all projections from the start of the log: the first build (``Projections.start``
   on an empty database until every view is live and current) and a ``rebuild()`` of all of them;
d. with ``--statements``: the same build without folds (every event through ``apply`` and SQL).

and prints events/s and the ratios to the raw read.
"""

import argparse
import asyncio
import json
import random
import time
import uuid
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from bench.harness import fresh_database, machine, markdown_table, ratio, server, server_settings
from events import Event, LogCursor, Metadata, encode_event
from events.accounts import (
    AccountCreated,
    AccountDeleted,
    AccountDisabled,
    AccountEnabled,
    AccountRoleAssigned,
    AccountRoleUnassigned,
    AccountUpdated,
)
from events.envelope import LOG_START
from events.teams import (
    TeamCreated,
    TeamDeleted,
    TeamMemberAdded,
    TeamMemberRemoved,
    TeamRoleAssigned,
    TeamRoleUnassigned,
    TeamUpdated,
)
from events.tokens import (
    TokenDeleted,
    TokenExpired,
    TokenExpiringSoon,
    TokenExtended,
    TokenIssued,
    TokenRenamed,
    TokenRevoked,
    TokenRotated,
    TokenRotationDue,
    TokenSecretRetired,
    TokenUsed,
)
from projections.base import Projection
from projections.build import Builder, BuildTarget
from projections.catalogue import ALL_PROJECTIONS
from projections.runtime import Projections
from projections.source import CombinedLogSource
from services import database
from services.eventstore import PostgresEventStore
from services.eventstore.notifications import LogNotifications
from services.eventstore.rows import recorded_event
from services.eventstore.tail import LogTail

COPY_CHUNK = 50_000
READ_BATCH = 10_000
_metadata_encoder = msgspec.json.Encoder()

ROLES = ("Admin", "Viewer", "Creator", "Publisher", "Maintainer", "Deployer")
ENTITY_TYPES = ("Control Planes", "Services", "Identity", "Portals")
REGIONS = ("us", "eu", "au", "*")
OPERATIONS = ("GET /v3/users", "GET /v2/control-planes", "POST /v2/portals", "DELETE /v3/teams")


class Generated(msgspec.Struct, frozen=True):
    """One event of a generated log, in log order."""

    stream_id: str
    stream_version: int
    event: Event
    occurred_at: datetime


class _Bag:
    """A list with O(1) random pick and removal (order does not matter)."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, item: str) -> bool:
        return item in self.index

    def add(self, item: str) -> None:
        if item not in self.index:
            self.index[item] = len(self.items)
            self.items.append(item)

    def remove(self, item: str) -> None:
        position = self.index.pop(item, None)
        if position is None:
            return
        last = self.items.pop()
        if position < len(self.items):
            self.items[position] = last
            self.index[last] = position

    def pick(self, rng: random.Random) -> str:
        return self.items[rng.randrange(len(self.items))]


class LogGenerator:
    """A plausible history of one organisation; deterministic for a seed.

    Weights are per step; a step whose preconditions do not hold (no token to use yet) falls back
    to creating an account, so early steps build the population the later ones act on.
    """

    WEIGHTS = (
        ("token_used", 700),
        ("token_issued", 60),
        ("token_extended", 25),
        ("account_created", 20),
        ("role_assigned", 25),
        ("member_added", 15),
        ("token_rotated", 10),
        ("token_revoked", 10),
        ("token_expired", 8),
        ("token_expiring_soon", 5),
        ("token_renamed", 5),
        ("role_unassigned", 5),
        ("team_role_assigned", 5),
        ("token_deleted", 4),
        ("account_updated", 5),
        ("account_disabled", 3),
        ("account_deleted", 3),
        ("member_removed", 3),
        ("token_rotation_due", 2),
        ("team_created", 2),
        ("team_updated", 1),
        ("team_role_unassigned", 1),
        ("team_deleted", 1),
    )

    def __init__(self, seed: int = 1, start: datetime | None = None) -> None:
        self.rng = random.Random(seed)
        self.now = start or datetime(2025, 1, 1, tzinfo=UTC)
        self.versions: dict[str, int] = {}
        self.accounts = _Bag()
        self.disabled = _Bag()
        self.tokens = _Bag()  # active tokens
        self.token_account: dict[str, str] = {}
        self.token_secret_version: dict[str, int] = {}
        self.account_tokens: dict[str, set[str]] = {}
        self.retirable: deque[tuple[str, int]] = deque()
        self.all_tokens = _Bag()  # not deleted
        self.assignments: dict[str, tuple[str, str]] = {}  # id -> (holder kind, holder id)
        self.assignment_bag = _Bag()
        self.team_assignment_bag = _Bag()
        self.teams = _Bag()
        self.members: dict[str, set[str]] = {}
        names, weights = zip(*self.WEIGHTS, strict=True)
        self._names: list[str] = list(names)
        self._cumulative = list(_accumulate(weights))

    def _id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _hash(self) -> str:
        return f"{self.rng.getrandbits(256):064x}"

    def _emit(self, stream_id: str, event: Event) -> Generated:
        version = self.versions.get(stream_id, 0) + 1
        self.versions[stream_id] = version
        return Generated(stream_id, version, event, self.now)

    def events(self, count: int) -> Iterator[Generated]:
        produced = 0
        while produced < count:
            self.now += timedelta(milliseconds=self.rng.randrange(1, 400))
            step = self.rng.choices(self._names, cum_weights=self._cumulative)[0]
            for generated in getattr(self, "_" + step)():
                yield generated
                produced += 1
                if produced >= count:
                    return

    # -- accounts --------------------------------------------------------------------------------

    def _account_created(self) -> list[Generated]:
        account_id = self._id()
        self.accounts.add(account_id)
        self.account_tokens[account_id] = set()
        event = AccountCreated(
            account_id=account_id,
            name=f"svc-{account_id[:8]}",
            description=self.rng.choice(("", "CI deployer", "metrics scraper")),
            konnect_managed=self.rng.random() < 0.05,
        )
        return [self._emit(f"account-{account_id}", event)]

    def _account_updated(self) -> list[Generated]:
        if not self.accounts:
            return self._account_created()
        account_id = self.accounts.pick(self.rng)
        event = AccountUpdated(
            account_id=account_id, name=f"svc-{self._id()[:8]}", description="renamed by the bench"
        )
        return [self._emit(f"account-{account_id}", event)]

    def _account_disabled(self) -> list[Generated]:
        if self.disabled and self.rng.random() < 0.5:
            account_id = self.disabled.pick(self.rng)
            self.disabled.remove(account_id)
            return [self._emit(f"account-{account_id}", AccountEnabled(account_id=account_id))]
        if not self.accounts:
            return self._account_created()
        account_id = self.accounts.pick(self.rng)
        if account_id in self.disabled:
            return []
        self.disabled.add(account_id)
        return [self._emit(f"account-{account_id}", AccountDisabled(account_id=account_id))]

    def _account_deleted(self) -> list[Generated]:
        if len(self.accounts) < 10:
            return self._account_created()
        account_id = self.accounts.pick(self.rng)
        out = []
        for token_id in sorted(self.account_tokens.pop(account_id, set())):
            if token_id in self.tokens:
                self.tokens.remove(token_id)
                out.append(
                    self._emit(
                        f"token-{token_id}",
                        TokenRevoked(token_id=token_id, account_id=account_id, reason="account deleted"),
                    )
                )
        out.append(self._emit(f"account-{account_id}", AccountDeleted(account_id=account_id)))
        self.accounts.remove(account_id)
        self.disabled.remove(account_id)
        for members in self.members.values():
            members.discard(account_id)
        return out

    def _role_assigned(self) -> list[Generated]:
        if not self.accounts:
            return self._account_created()
        account_id = self.accounts.pick(self.rng)
        assignment_id = self._id()
        self.assignments[assignment_id] = ("account", account_id)
        self.assignment_bag.add(assignment_id)
        event = AccountRoleAssigned(
            account_id=account_id,
            assignment_id=assignment_id,
            role_name=self.rng.choice(ROLES),
            entity_id=self._id(),
            entity_type_name=self.rng.choice(ENTITY_TYPES),
            entity_region=self.rng.choice(REGIONS),
        )
        return [self._emit(f"account-{account_id}", event)]

    def _role_unassigned(self) -> list[Generated]:
        if not self.assignment_bag:
            return self._role_assigned()
        assignment_id = self.assignment_bag.pick(self.rng)
        self.assignment_bag.remove(assignment_id)
        _, account_id = self.assignments.pop(assignment_id)
        if account_id not in self.accounts:
            return []
        event = AccountRoleUnassigned(account_id=account_id, assignment_id=assignment_id)
        return [self._emit(f"account-{account_id}", event)]

    # -- tokens ----------------------------------------------------------------------------------

    def _token_issued(self) -> list[Generated]:
        if not self.accounts:
            return self._account_created()
        account_id = self.accounts.pick(self.rng)
        token_id = self._id()
        self.tokens.add(token_id)
        self.all_tokens.add(token_id)
        self.token_account[token_id] = account_id
        self.token_secret_version[token_id] = 1
        self.account_tokens[account_id].add(token_id)
        sliding = self.rng.random() < 0.3
        event = TokenIssued(
            token_id=token_id,
            account_id=account_id,
            name=f"token-{token_id[:8]}",
            secret_hash=self._hash(),
            expires_at=None if self.rng.random() < 0.2 else self.now + timedelta(days=90),
            scopes=None if self.rng.random() < 0.5 else ["read", "write"][: self.rng.randrange(1, 3)],
            auto_extend_seconds=86_400 if sliding else None,
            max_expires_at=self.now + timedelta(days=365) if sliding else None,
        )
        return [self._emit(f"token-{token_id}", event)]

    def _active_token(self) -> tuple[str, str] | None:
        if not self.tokens:
            return None
        token_id = self.tokens.pick(self.rng)
        return token_id, self.token_account[token_id]

    def _token_used(self) -> list[Generated]:
        picked = self._active_token()
        if picked is None:
            return self._token_issued()
        token_id, account_id = picked
        event = TokenUsed(
            token_id=token_id,
            account_id=account_id,
            used_at=self.now - timedelta(milliseconds=self.rng.randrange(0, 50)),
            operation=self.rng.choice(OPERATIONS),
            client_address=f"10.0.{self.rng.randrange(256)}.{self.rng.randrange(256)}",
            user_agent="bench/1.0",
        )
        return [self._emit(f"token-usage-{token_id}", event)]

    def _token_extended(self) -> list[Generated]:
        picked = self._active_token()
        if picked is None:
            return self._token_issued()
        token_id, account_id = picked
        event = TokenExtended(
            token_id=token_id, account_id=account_id, expires_at=self.now + timedelta(days=1)
        )
        return [self._emit(f"token-{token_id}", event)]

    def _token_renamed(self) -> list[Generated]:
        picked = self._active_token()
        if picked is None:
            return self._token_issued()
        token_id, account_id = picked
        event = TokenRenamed(token_id=token_id, account_id=account_id, name=f"renamed-{self._id()[:6]}")
        return [self._emit(f"token-{token_id}", event)]

    def _token_rotated(self) -> list[Generated]:
        picked = self._active_token()
        if picked is None:
            return self._token_issued()
        token_id, account_id = picked
        version = self.token_secret_version[token_id] + 1
        self.token_secret_version[token_id] = version
        grace = self.rng.random() < 0.7
        if grace:
            self.retirable.append((token_id, version - 1))
        event = TokenRotated(
            token_id=token_id,
            account_id=account_id,
            secret_hash=self._hash(),
            secret_version=version,
            previous_valid_until=self.now + timedelta(hours=1) if grace else None,
        )
        out = [self._emit(f"token-{token_id}", event)]
        if self.retirable and self.rng.random() < 0.8:
            retired_token, retired_version = self.retirable.popleft()
            out.append(
                self._emit(
                    f"token-{retired_token}",
                    TokenSecretRetired(
                        token_id=retired_token,
                        account_id=self.token_account[retired_token],
                        secret_version=retired_version,
                    ),
                )
            )
        return out

    def _end_token(self, make: Any) -> list[Generated]:
        picked = self._active_token()
        if picked is None:
            return self._token_issued()
        token_id, account_id = picked
        self.tokens.remove(token_id)
        return [self._emit(f"token-{token_id}", make(token_id, account_id))]

    def _token_revoked(self) -> list[Generated]:
        return self._end_token(
            lambda t, a: TokenRevoked(token_id=t, account_id=a, reason=self.rng.choice(("leaked", "unused")))
        )

    def _token_expired(self) -> list[Generated]:
        return self._end_token(lambda t, a: TokenExpired(token_id=t, account_id=a, expires_at=self.now))

    def _token_expiring_soon(self) -> list[Generated]:
        picked = self._active_token()
        if picked is None:
            return self._token_issued()
        token_id, account_id = picked
        event = TokenExpiringSoon(
            token_id=token_id,
            account_id=account_id,
            expires_at=self.now + timedelta(days=7),
            lead_seconds=7 * 86_400,
        )
        return [self._emit(f"token-{token_id}", event)]

    def _token_rotation_due(self) -> list[Generated]:
        picked = self._active_token()
        if picked is None:
            return self._token_issued()
        token_id, account_id = picked
        event = TokenRotationDue(token_id=token_id, account_id=account_id, due_at=self.now)
        return [self._emit(f"token-{token_id}", event)]

    def _token_deleted(self) -> list[Generated]:
        if not self.all_tokens:
            return self._token_issued()
        token_id = self.all_tokens.pick(self.rng)
        account_id = self.token_account[token_id]
        self.all_tokens.remove(token_id)
        out = []
        if token_id in self.tokens:
            self.tokens.remove(token_id)
            out.append(
                self._emit(
                    f"token-{token_id}",
                    TokenRevoked(token_id=token_id, account_id=account_id, reason="deleted"),
                )
            )
        out.append(self._emit(f"token-{token_id}", TokenDeleted(token_id=token_id, account_id=account_id)))
        return out

    # -- teams -----------------------------------------------------------------------------------

    def _labels(self) -> dict[str, str]:
        return {"env": self.rng.choice(("prod", "dev")), "owner": f"team-{self.rng.randrange(50)}"}

    def _team_created(self) -> list[Generated]:
        team_id = self._id()
        self.teams.add(team_id)
        self.members[team_id] = set()
        event = TeamCreated(
            team_id=team_id, name=f"team-{team_id[:8]}", description="bench team", labels=self._labels()
        )
        return [self._emit(f"team-{team_id}", event)]

    def _team_updated(self) -> list[Generated]:
        if not self.teams:
            return self._team_created()
        team_id = self.teams.pick(self.rng)
        event = TeamUpdated(
            team_id=team_id, name=f"team-{self._id()[:8]}", description="", labels=self._labels()
        )
        return [self._emit(f"team-{team_id}", event)]

    def _team_deleted(self) -> list[Generated]:
        if len(self.teams) < 5:
            return self._team_created()
        team_id = self.teams.pick(self.rng)
        self.teams.remove(team_id)
        self.members.pop(team_id, None)
        return [self._emit(f"team-{team_id}", TeamDeleted(team_id=team_id))]

    def _member_added(self) -> list[Generated]:
        if not self.teams or not self.accounts:
            return self._team_created()
        team_id = self.teams.pick(self.rng)
        account_id = self.accounts.pick(self.rng)
        if account_id in self.members[team_id]:
            return []
        self.members[team_id].add(account_id)
        event = TeamMemberAdded(team_id=team_id, account_id=account_id)
        return [self._emit(f"team-{team_id}", event)]

    def _member_removed(self) -> list[Generated]:
        if not self.teams:
            return self._team_created()
        team_id = self.teams.pick(self.rng)
        if not self.members[team_id]:
            return []
        account_id = self.rng.choice(sorted(self.members[team_id]))
        self.members[team_id].discard(account_id)
        event = TeamMemberRemoved(team_id=team_id, account_id=account_id)
        return [self._emit(f"team-{team_id}", event)]

    def _team_role_assigned(self) -> list[Generated]:
        if not self.teams:
            return self._team_created()
        team_id = self.teams.pick(self.rng)
        assignment_id = self._id()
        self.assignments[assignment_id] = ("team", team_id)
        self.team_assignment_bag.add(assignment_id)
        event = TeamRoleAssigned(
            team_id=team_id,
            assignment_id=assignment_id,
            role_name=self.rng.choice(ROLES),
            entity_id=self._id(),
            entity_type_name=self.rng.choice(ENTITY_TYPES),
            entity_region=self.rng.choice(REGIONS),
        )
        return [self._emit(f"team-{team_id}", event)]

    def _team_role_unassigned(self) -> list[Generated]:
        if not self.team_assignment_bag:
            return self._team_role_assigned()
        assignment_id = self.team_assignment_bag.pick(self.rng)
        self.team_assignment_bag.remove(assignment_id)
        _, team_id = self.assignments.pop(assignment_id)
        if team_id not in self.teams:
            return []
        event = TeamRoleUnassigned(team_id=team_id, assignment_id=assignment_id)
        return [self._emit(f"team-{team_id}", event)]


def _accumulate(weights: tuple[int, ...]) -> Iterator[int]:
    total = 0
    for weight in weights:
        total += weight
        yield total


def generate(count: int, seed: int = 1) -> list[Generated]:
    """``count`` events of a plausible history, in log order."""
    return list(LogGenerator(seed).events(count))


async def load_log(connection: asyncpg.Connection, log: list[Generated]) -> None:
    """Writes ``log`` into ``events`` with COPY, one transaction per chunk, and fills ``streams``."""
    columns = ["stream_id", "stream_version", "event_id", "type", "data", "metadata", "recorded_at"]
    rng = random.Random(7)
    for start in range(0, len(log), COPY_CHUNK):
        records = []
        for item in log[start : start + COPY_CHUNK]:
            metadata = Metadata(occurred_at=item.occurred_at, actor="system:bench")
            records.append(
                (
                    item.stream_id,
                    item.stream_version,
                    uuid.UUID(int=rng.getrandbits(128), version=4),
                    item.event.tag(),
                    encode_event(item.event).decode(),
                    _metadata_encoder.encode(metadata).decode(),
                    item.occurred_at,
                )
            )
        async with connection.transaction():
            await connection.copy_records_to_table("events", records=records, columns=columns)
    await connection.execute(
        "INSERT INTO streams (stream_id, version)"
        " SELECT stream_id, max(stream_version) FROM events GROUP BY stream_id"
        " ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version"
    )
    await connection.execute("VACUUM ANALYZE events")


_RAW_SQL = (
    "SELECT global_position, tx_id::text::bigint AS tx_id, stream_id, stream_version, event_id, type,"
    " data::text AS data, metadata::text AS metadata, recorded_at FROM events"
    " ORDER BY tx_id, global_position"
)


async def raw_read(connection: asyncpg.Connection) -> tuple[float, float, int]:
    """(seconds reading, seconds decoding, rows): a server-side cursor read in batches; decoding
    is timed apart, on each fetched batch."""
    rows = 0
    decoding = 0.0
    began = time.perf_counter()
    async with connection.transaction():
        cursor = await connection.cursor(_RAW_SQL)
        while True:
            batch = await cursor.fetch(READ_BATCH)
            if not batch:
                break
            rows += len(batch)
            started = time.perf_counter()
            for row in batch:
                recorded_event(row)
            decoding += time.perf_counter() - started
    return time.perf_counter() - began - decoding, decoding, rows


async def read_all_loop(store: PostgresEventStore) -> tuple[float, int]:
    began = time.perf_counter()
    cursor = LOG_START
    count = 0
    while True:
        batch = await store.read_all(cursor, READ_BATCH)
        if not batch:
            break
        count += len(batch)
        cursor = batch[-1].cursor
    return time.perf_counter() - began, count


async def first_build(dsn: str, pool: asyncpg.Pool, store: PostgresEventStore) -> float:
    """Seconds from ``Projections.start`` on a database without read models until all are current."""
    notifications = LogNotifications(lambda: database.connect(dsn))
    await notifications.start()
    source = CombinedLogSource(LogTail(store, notifications.waiter()), store)
    projections = Projections(pool, source, ALL_PROJECTIONS, connect=lambda: database.connect(dsn))
    began = time.perf_counter()
    await projections.start()
    try:
        if not await projections.wait_until_current(timeout=3600):
            raise RuntimeError(f"the build did not finish: {await projections.status()}")
        return time.perf_counter() - began
    finally:
        await projections.stop()
        await notifications.stop()


async def rebuild_all(dsn: str, pool: asyncpg.Pool, store: PostgresEventStore) -> float:
    """Seconds for ``Projections.rebuild()`` of every projection (runners stopped: the log is still)."""
    source = CombinedLogSource(_NoTail(), store)
    projections = Projections(pool, source, ALL_PROJECTIONS, connect=lambda: database.connect(dsn))
    began = time.perf_counter()
    await projections.rebuild()
    return time.perf_counter() - began


async def statement_build(dsn: str, store: PostgresEventStore, projections: list[Projection]) -> float:
    """Seconds to build every projection into scratch tables with statements only (no folds)."""
    builder = Builder(store)
    connections = [await database.connect(dsn) for _ in projections]
    try:
        targets = [
            BuildTarget(p, c, 999, use_fold=False) for p, c in zip(projections, connections, strict=True)
        ]
        began = time.perf_counter()
        await builder.build(targets)
        elapsed = time.perf_counter() - began
        for target in targets:
            for table in target.tables.values():
                await target.connection.execute(f"DROP TABLE IF EXISTS {table}")
        return elapsed
    finally:
        for connection in connections:
            await connection.close()


class _NoTail:
    def batches(self, after: LogCursor) -> Any:
        raise RuntimeError("a rebuild does not tail the log")


async def run(count: int, seed: int, statements: bool) -> dict[str, Any]:
    async with server() as server_dsn, fresh_database(server_dsn, "rebuild") as dsn:
        began = time.perf_counter()
        log = generate(count, seed)
        generated = time.perf_counter() - began
        connection = await database.connect(dsn)
        try:
            began = time.perf_counter()
            await load_log(connection, log)
            loaded = time.perf_counter() - began
            del log
            reading, decoding, rows = await raw_read(connection)
        finally:
            await connection.close()
        pool = await database.create_pool(dsn, min_size=2, max_size=10)
        try:
            store = PostgresEventStore(pool)
            read_all_seconds, read_all_rows = await read_all_loop(store)
            build_seconds = await first_build(dsn, pool, store)
            rebuild_seconds = await rebuild_all(dsn, pool, store)
            statement_seconds = await statement_build(dsn, store, ALL_PROJECTIONS) if statements else None
            async with pool.acquire() as c:
                sizes = {
                    name: await c.fetchval(f"SELECT count(*) FROM rm_{name}")
                    for name in (
                        "accounts",
                        "tokens",
                        "token_secrets",
                        "role_assignments",
                        "teams",
                        "team_members",
                    )
                }
            settings = await server_settings(dsn)
        finally:
            await pool.close()
    raw = rows / reading
    results: dict[str, Any] = {
        "events": rows,
        "generate_s": round(generated, 2),
        "copy_in_s": round(loaded, 2),
        "raw_read_eps": round(raw),
        "decode_only_eps": round(rows / decoding),
        "read_all_eps": round(read_all_rows / read_all_seconds),
        "first_build_eps": round(rows / build_seconds),
        "first_build_s": round(build_seconds, 2),
        "rebuild_all_eps": round(rows / rebuild_seconds),
        "rebuild_all_s": round(rebuild_seconds, 2),
        "statement_build_eps": round(rows / statement_seconds) if statement_seconds else None,
        "rows": sizes,
        "machine": machine(),
        "server": settings,
    }
    print(
        markdown_table(
            ["measure", "events/s", "vs raw read"],
            [
                ["a. raw read (server-side cursor, no decoding)", f"{raw:,.0f}", "1.00"],
                ["b. decoding only", f"{rows / decoding:,.0f}", f"{ratio(rows / decoding, raw):.2f}"],
                [
                    "b. read_all (read + decode, batches of 10k)",
                    f"{results['read_all_eps']:,}",
                    f"{ratio(results['read_all_eps'], raw):.2f}",
                ],
                [
                    "c. first build, all projections (start -> current)",
                    f"{results['first_build_eps']:,}",
                    f"{ratio(results['first_build_eps'], raw):.2f}",
                ],
                [
                    "c. rebuild(), all projections",
                    f"{results['rebuild_all_eps']:,}",
                    f"{ratio(results['rebuild_all_eps'], raw):.2f}",
                ],
                *(
                    [
                        [
                            "d. build with statements only (no folds)",
                            f"{results['statement_build_eps']:,}",
                            f"{ratio(results['statement_build_eps'], raw):.2f}",
                        ]
                    ]
                    if statement_seconds
                    else []
                ),
            ],
        )
    )
    print(json.dumps(results, indent=2, default=str))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rebuild", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--statements", action="store_true", help="also build with statements only")
    args = parser.parse_args()
    asyncio.run(run(args.events, args.seed, args.statements))


if __name__ == "__main__":
    main()
