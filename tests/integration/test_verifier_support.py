"""Support for the verifier's integration tests (no tests here): a world on a fresh database with the
real projections' reducers applied by a tiny, controllable runner.

Why not the projections runtime: these tests must hold the read model *behind* the log on purpose (a
verifier that has seen an event the read model has not applied must not accept a stale row), so the
runner here applies events only when a test says so, up to a cursor the test chooses. It uses each
projection's public contract only (``ddl()``, ``apply()``, ``name``, ``tables`` from
``projections.catalogue``): plain tables named ``rm_<table>`` (what the runtime's views are called),
rows and the ``projection_checkpoints`` row committed in one transaction, as the runtime does. When
``projections.runtime`` is ready, ``ReadModel.catch_up`` can be swapped for it without touching the
tests.
"""

import re
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from events import Event, LogCursor, Metadata, NewEvent
from events.accounts import AccountCreated, AccountRoleAssigned
from events.envelope import LOG_START
from events.teams import TeamCreated, TeamMemberAdded, TeamRoleAssigned
from events.tokens import TokenIssued
from projections.base import Projection
from projections.catalogue import ALL_PROJECTIONS
from services import database
from services.auth.verifier import TokenVerifier
from services.dependencies import Dependencies
from services.directory import StreamDirectory
from services.dispatch import Dispatcher
from services.eventstore import PostgresEventStore
from services.eventstore.notifications import LogNotifications
from services.policy import TokenPolicy
from services.ports import AppendResult, EventStore, StreamState
from services.roles.catalogue import load_catalogue
from services.tokens.secrets import generate_secret, secret_hash

PEPPER = b"integration-test-pepper-0123456789abcdef"
ORGANIZATION = "9a0f4c61-6f35-4d7e-9d3a-3f1f2b2c0001"

CHECKPOINTS_DDL = (
    "CREATE TABLE IF NOT EXISTS projection_checkpoints ("
    " name text PRIMARY KEY, version int NOT NULL, tx_id bigint NOT NULL, position bigint NOT NULL,"
    " updated_at timestamptz NOT NULL DEFAULT now())"
)


def new_id() -> str:
    return str(uuid.uuid4())


def utc_now() -> datetime:
    return datetime.now(UTC)


def dispatcher_over(store: EventStore) -> Dispatcher:
    """The real dispatcher, its handlers appending to ``store`` (what the usage recorder sends
    its batches through)."""
    deps = Dependencies(
        store=store,
        directory=StreamDirectory(store),
        catalogue=load_catalogue(None),
        token_policy=TokenPolicy(max_lifetime=timedelta(days=365), allow_non_expiring=True),
        pepper=PEPPER,
        organization_id=ORGANIZATION,
    )
    return Dispatcher(deps)


class ReadModel:
    """The real reducers, applied on demand. One cursor for all projections (they move together)."""

    def __init__(
        self, pool: asyncpg.Pool, store: PostgresEventStore, projections: Sequence[Projection]
    ) -> None:
        self.pool = pool
        self.store = store
        self.projections = list(projections)
        self.cursor = LOG_START
        self._renderers = {
            p.name: _renderer({table: f"rm_{table}" for table in p.tables}) for p in self.projections
        }

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.projections]

    async def create(self) -> None:
        async with self.pool.acquire() as connection:
            await connection.execute(CHECKPOINTS_DDL)
            for projection in self.projections:
                for statement in projection.ddl():
                    await connection.execute(self._renderers[projection.name](statement))
                await connection.execute(
                    "INSERT INTO projection_checkpoints (name, version, tx_id, position)"
                    " VALUES ($1, $2, 0, 0) ON CONFLICT (name) DO NOTHING",
                    projection.name,
                    projection.version,
                )

    async def catch_up(self, upto: LogCursor | None = None) -> LogCursor:
        """Applies every committed event after the cursor (up to ``upto``, inclusive)."""
        while True:
            batch = await self.store.read_all(self.cursor, 500)
            if upto is not None:
                batch = [e for e in batch if e.cursor <= upto]
            if not batch:
                return self.cursor
            async with self.pool.acquire() as connection, connection.transaction():
                for recorded in batch:
                    for projection in self.projections:
                        render = self._renderers[projection.name]
                        for statement in projection.apply(recorded):
                            await connection.execute(render(statement.sql), *statement.args)
                last = batch[-1].cursor
                await connection.execute(
                    "UPDATE projection_checkpoints SET tx_id = $2, position = $3, updated_at = now()"
                    " WHERE name = ANY ($1::text[])",
                    self.names,
                    last.tx_id,
                    last.position,
                )
            self.cursor = last


def _renderer(tables: dict[str, str]) -> Any:
    pattern = re.compile(r"\{([a-z_][a-z0-9_]*)\}")

    def render(sql: str) -> str:
        return pattern.sub(lambda m: tables.get(m.group(1), m.group(0)), sql)

    return render


@dataclass
class IssuedToken:
    token_id: str
    account_id: str
    secret: str
    cursor: LogCursor

    @property
    def hash(self) -> str:
        return secret_hash(self.secret, PEPPER)


@dataclass
class World:
    dsn: str
    pool: asyncpg.Pool
    store: PostgresEventStore
    notifications: LogNotifications
    read_model: ReadModel
    verifiers: list[TokenVerifier] = field(default_factory=list)

    async def verifier(self, **options: Any) -> TokenVerifier:
        options.setdefault("projections", self.read_model.names)
        verifier = TokenVerifier(self.pool, self.notifications, PEPPER, **options)
        await verifier.start()
        self.verifiers.append(verifier)
        return verifier

    async def append(self, stream_id: str, *events: Event, at: datetime | None = None) -> AppendResult:
        metadata = Metadata(occurred_at=at or utc_now(), actor="system:tests")
        return await self.store.append(
            stream_id, [NewEvent(event=e, metadata=metadata) for e in events], StreamState.ANY
        )

    async def settle(self, verifier: TokenVerifier | None = None) -> LogCursor:
        """Read model and (if given) the verifier's tail are up to date with the log."""
        cursor = await self.read_model.catch_up()
        if verifier is not None:
            assert await verifier.wait_for(cursor, 5.0)
        return cursor

    async def account(self, name: str | None = None) -> str:
        account_id = new_id()
        await self.append(
            f"account-{account_id}", AccountCreated(account_id=account_id, name=name or account_id)
        )
        return account_id

    async def issue(
        self,
        account_id: str,
        *,
        name: str = "ci",
        expires_at: datetime | None = None,
        scopes: list[str] | None = None,
        auto_extend_seconds: int | None = None,
        max_expires_at: datetime | None = None,
        at: datetime | None = None,
    ) -> IssuedToken:
        token_id = new_id()
        secret = generate_secret()
        if expires_at is None:
            expires_at = utc_now() + timedelta(days=30)
        result = await self.append(
            f"token-{token_id}",
            TokenIssued(
                token_id=token_id,
                account_id=account_id,
                name=name,
                secret_hash=secret_hash(secret, PEPPER),
                expires_at=expires_at,
                scopes=scopes,
                auto_extend_seconds=auto_extend_seconds,
                max_expires_at=max_expires_at,
            ),
            at=at,
        )
        return IssuedToken(token_id, account_id, secret, result.cursor)

    async def grant(self, account_id: str, role_name: str = "Admin") -> str:
        assignment_id = new_id()
        await self.append(
            f"account-{account_id}",
            AccountRoleAssigned(
                account_id=account_id,
                assignment_id=assignment_id,
                role_name=role_name,
                entity_id=ORGANIZATION,
                entity_type_name="Identity",
                entity_region="*",
            ),
        )
        return assignment_id

    async def team_with_role(self, member: str, role_name: str = "Viewer") -> tuple[str, str]:
        team_id, assignment_id = new_id(), new_id()
        await self.append(
            f"team-{team_id}",
            TeamCreated(team_id=team_id, name=f"team-{team_id[:8]}"),
            TeamMemberAdded(team_id=team_id, account_id=member),
            TeamRoleAssigned(
                team_id=team_id,
                assignment_id=assignment_id,
                role_name=role_name,
                entity_id=ORGANIZATION,
                entity_type_name="Identity",
                entity_region="us",
            ),
        )
        return team_id, assignment_id


@asynccontextmanager
async def open_world(dsn: str) -> AsyncIterator[World]:
    pool = await database.create_pool(dsn, min_size=1, max_size=20)
    notifications = LogNotifications(lambda: database.connect(dsn))
    await notifications.start()
    store = PostgresEventStore(pool)
    read_model = ReadModel(pool, store, ALL_PROJECTIONS)
    await read_model.create()
    world = World(dsn, pool, store, notifications, read_model)
    try:
        yield world
    finally:
        for verifier in world.verifiers:
            await verifier.stop()
        await notifications.stop()
        await pool.close()
