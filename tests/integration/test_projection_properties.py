"""Properties of the read models, checked against PostgreSQL on histories drawn by Hypothesis.

Histories are valid per aggregate (each account, token and team stream starts with its creation and
nothing follows its deletion; a token's usage follows its issue) and interleaved arbitrarily across
aggregates, with events for rows that are gone or never existed. For each history P + B:

- idempotence: applying B a second time (a crash after the statements but before the checkpoint)
  leaves exactly the rows of applying it once;
- the in-memory fold used by builds leaves exactly the rows of the statements, and so does folding P
  then applying B with statements (a build followed by its catch-up).
"""

import itertools
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events import Event, Metadata, RecordedEvent
from events.accounts import (
    AccountCreated,
    AccountDeleted,
    AccountDisabled,
    AccountEnabled,
    AccountExpired,
    AccountExpiringSoon,
    AccountRoleAssigned,
    AccountRoleUnassigned,
    AccountUpdated,
)
from events.federation import (
    ClaimCondition,
    FederatedCredentialCreated,
    FederatedCredentialDeleted,
    FederatedCredentialUpdated,
)
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
from projections import bookkeeping
from projections.build import BuildTarget
from projections.catalogue import ALL_PROJECTIONS
from services import database
from tests.integration.test_projection_support import PRIMARY_KEYS, table_text

T0 = datetime(2025, 1, 1, tzinfo=UTC)
ACCOUNTS = [str(uuid.UUID(int=0xA00 + n)) for n in range(3)]
TOKENS = [str(uuid.UUID(int=0xB00 + n)) for n in range(3)]
TEAMS = [str(uuid.UUID(int=0xC00 + n)) for n in range(2)]
ENTITY = str(uuid.UUID(int=0xE00))
_ids = itertools.count(1)
_generations = itertools.count(100)

# PostgreSQL's text holds neither NUL nor a lone surrogate: the event store refuses both (InvalidAppend),
# so no event in the log carries one.
names = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=3)
instants = st.integers(0, 10_000).map(lambda s: T0 + timedelta(seconds=s))
labels = st.dictionaries(
    st.sampled_from(["env", "team", "tier"]), st.sampled_from(["a", "b", ""]), max_size=2
)


def _assignment() -> str:
    return str(uuid.UUID(int=0xD000 + next(_ids)))


@st.composite
def account_stream(draw: Any, account_id: str) -> list[Event]:
    lifetimes = st.none() | st.sampled_from([T0 + timedelta(days=1), T0 + timedelta(days=2)])
    lifetime = draw(lifetimes)
    events: list[Event] = [
        AccountCreated(account_id=account_id, name=draw(st.sampled_from(["a", "b"])), expires_at=lifetime)
    ]
    held: list[str] = []
    trusted: list[str] = []
    ops = [
        "update",
        "disable",
        "enable",
        "assign",
        "unassign",
        "expire",
        "warn",
        "trust",
        "retrust",
        "distrust",
    ]
    for op in draw(st.lists(st.sampled_from(ops), max_size=6)):
        if op == "update":
            lifetime = draw(lifetimes)
            events.append(
                AccountUpdated(account_id=account_id, name=draw(names), description="d", expires_at=lifetime)
            )
        elif op in ("expire", "warn"):
            # Also of a lifetime since replaced: the reducers must ignore those.
            at = lifetime or T0 + timedelta(days=3)
            events.append(
                AccountExpired(account_id=account_id, expires_at=at)
                if op == "expire"
                else AccountExpiringSoon(
                    account_id=account_id, expires_at=at, lead_seconds=draw(st.sampled_from([60, 3600]))
                )
            )
        elif op == "disable":
            events.append(AccountDisabled(account_id=account_id))
        elif op == "enable":
            events.append(AccountEnabled(account_id=account_id))
        elif op == "assign":
            held.append(_assignment())
            events.append(
                AccountRoleAssigned(
                    account_id=account_id,
                    assignment_id=held[-1],
                    role_name="Admin",
                    entity_id=ENTITY,
                    entity_type_name="Control Planes",
                    entity_region="eu",
                )
            )
        elif op == "trust":
            trusted.append(_assignment())
            events.append(FederatedCredentialCreated(**_credential(account_id, trusted[-1], draw(names))))
        elif op == "retrust" and trusted:
            events.append(FederatedCredentialUpdated(**_credential(account_id, trusted[0], draw(names))))
        elif op == "distrust" and trusted:
            events.append(FederatedCredentialDeleted(account_id=account_id, credential_id=trusted.pop(0)))
        elif op == "unassign" and held:
            events.append(AccountRoleUnassigned(account_id=account_id, assignment_id=held.pop(0)))
    if draw(st.booleans()):
        events.append(AccountDeleted(account_id=account_id))
    return events


def _credential(account_id: str, credential_id: str, subject: str) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "credential_id": credential_id,
        "name": "ci",
        "issuer": "https://issuer.example",
        "audiences": ("urn:tokenledger:local",),
        "subject": subject,
        "conditions": (ClaimCondition(claim="env", operator="one_of", values=("a", subject)),),
        "max_token_lifetime_seconds": 600,
    }


@st.composite
def token_stream(draw: Any, token_id: str) -> list[Event]:
    account_id = draw(st.sampled_from(ACCOUNTS))
    events: list[Event] = [
        TokenIssued(
            token_id=token_id,
            account_id=account_id,
            name="t",
            secret_hash=f"{token_id}-1",
            expires_at=draw(st.none() | instants),
            scopes=draw(st.none() | st.lists(st.sampled_from(["read", "write"]), max_size=2)),
            auto_extend_seconds=draw(st.none() | st.integers(1, 100)),
            max_expires_at=draw(st.none() | instants),
        )
    ]
    version = 1
    ops = ["rename", "rotate", "retire", "extend", "revoke", "expire", "delete", "soon", "due"]
    for op in draw(st.lists(st.sampled_from(ops), max_size=6)):
        if op == "rename":
            events.append(TokenRenamed(token_id=token_id, account_id=account_id, name=draw(names)))
        elif op == "rotate":
            version += 1
            events.append(
                TokenRotated(
                    token_id=token_id,
                    account_id=account_id,
                    secret_hash=f"{token_id}-{version}",
                    secret_version=version,
                    previous_valid_until=draw(st.none() | instants),
                )
            )
        elif op == "retire":
            retired = draw(st.integers(1, version))
            events.append(
                TokenSecretRetired(token_id=token_id, account_id=account_id, secret_version=retired)
            )
        elif op == "extend":
            events.append(TokenExtended(token_id=token_id, account_id=account_id, expires_at=draw(instants)))
        elif op == "revoke":
            events.append(
                TokenRevoked(
                    token_id=token_id, account_id=account_id, reason=draw(st.sampled_from(["x", "y"]))
                )
            )
        elif op == "expire":
            events.append(TokenExpired(token_id=token_id, account_id=account_id, expires_at=draw(instants)))
        elif op == "delete":
            events.append(TokenDeleted(token_id=token_id, account_id=account_id))
        elif op == "soon":
            events.append(
                TokenExpiringSoon(
                    token_id=token_id, account_id=account_id, expires_at=draw(instants), lead_seconds=5
                )
            )
        else:
            events.append(TokenRotationDue(token_id=token_id, account_id=account_id, due_at=draw(instants)))
    return events


@st.composite
def usage_stream(draw: Any, token_id: str, account_id: str) -> list[Event]:
    return [
        TokenUsed(token_id=token_id, account_id=account_id, used_at=at)
        for at in draw(st.lists(instants, max_size=4))
    ]


@st.composite
def team_stream(draw: Any, team_id: str) -> list[Event]:
    events: list[Event] = [
        TeamCreated(team_id=team_id, name="t", description=draw(names), labels=draw(labels))
    ]
    held: list[str] = []
    ops = ["update", "add", "remove", "assign", "unassign"]
    for op in draw(st.lists(st.sampled_from(ops), max_size=6)):
        if op == "update":
            events.append(TeamUpdated(team_id=team_id, name=draw(names), description="", labels=draw(labels)))
        elif op == "add":
            events.append(TeamMemberAdded(team_id=team_id, account_id=draw(st.sampled_from(ACCOUNTS))))
        elif op == "remove":
            events.append(TeamMemberRemoved(team_id=team_id, account_id=draw(st.sampled_from(ACCOUNTS))))
        elif op == "assign":
            held.append(_assignment())
            events.append(
                TeamRoleAssigned(
                    team_id=team_id,
                    assignment_id=held[-1],
                    role_name="Viewer",
                    entity_id=ENTITY,
                    entity_type_name="Services",
                    entity_region="*",
                )
            )
        elif held:
            events.append(TeamRoleUnassigned(team_id=team_id, assignment_id=held.pop()))
    if draw(st.booleans()):
        events.append(TeamDeleted(team_id=team_id))
    return events


@st.composite
def histories(draw: Any) -> tuple[list[RecordedEvent], int, int]:
    """A log (streams interleaved), and the split into a prefix P and a batch B."""
    streams: list[list[Event]] = [draw(account_stream(a)) for a in ACCOUNTS]
    streams += [draw(team_stream(t)) for t in TEAMS]
    for token_id in TOKENS:
        tokens = draw(token_stream(token_id))
        issued = tokens[0]
        assert isinstance(issued, TokenIssued)
        # The usage stream follows the issue: it is merged into the token's stream at random places.
        usage = draw(usage_stream(token_id, issued.account_id))
        merged = [tokens[0]]
        rest = tokens[1:]
        while rest or usage:
            if usage and (not rest or draw(st.booleans())):
                merged.append(usage.pop(0))
            else:
                merged.append(rest.pop(0))
        streams.append(merged)
    log: list[RecordedEvent] = []
    while any(streams):
        live = [s for s in streams if s]
        stream = live[draw(st.integers(0, len(live) - 1))]
        event = stream.pop(0)
        at = T0 + timedelta(seconds=len(log), microseconds=draw(st.integers(0, 999_999)))
        log.append(
            RecordedEvent(
                global_position=len(log) + 1,
                tx_id=1000 + len(log),
                stream_id="s",
                stream_version=1,
                event_id=uuid.uuid4(),
                event=event,
                metadata=Metadata(occurred_at=at),
                recorded_at=at,
            )
        )
    prefix = draw(st.integers(0, len(log)))
    batch = draw(st.integers(0, len(log) - prefix))
    return log, prefix, batch


@pytest.fixture
async def connection(empty_database: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await database.connect(empty_database)
    try:
        yield connection
    finally:
        await connection.close()


async def build(
    connection: Any, *, fold: Sequence[RecordedEvent] = (), statements: Sequence[Sequence[RecordedEvent]] = ()
) -> dict[str, str]:
    """Fresh tables of every projection: ``fold`` folded in memory and COPYed, then each batch of
    ``statements`` applied with SQL. Returns logical -> physical table names."""
    generation = next(_generations)
    tables: dict[str, str] = {}
    for projection in ALL_PROJECTIONS:
        target = BuildTarget(projection, connection, generation)
        await bookkeeping.create_tables(connection, projection, target.tables)
        target.fold_batch(fold)
        await target.flush_fold()
        await bookkeeping.create_indexes(connection, projection, target.tables)
        for batch in statements:
            await target.run_statements(batch)
        tables.update(target.tables)
    return tables


async def contents(connection: Any, tables: dict[str, str]) -> dict[str, list[str]]:
    return {table: await table_text(connection, physical, table) for table, physical in tables.items()}


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories())
async def test_batches_are_idempotent_and_folds_agree_with_statements(
    connection: asyncpg.Connection, history: tuple[list[RecordedEvent], int, int]
) -> None:
    log, prefix_length, batch_length = history
    prefix = log[:prefix_length]
    batch = log[prefix_length : prefix_length + batch_length]
    built: list[dict[str, str]] = []
    try:
        built.append(await build(connection, statements=[prefix, batch]))
        built.append(await build(connection, statements=[prefix, batch, batch]))
        built.append(await build(connection, fold=prefix + batch))
        built.append(await build(connection, fold=prefix, statements=[batch]))
        once, twice, folded, mixed = [await contents(connection, tables) for tables in built]
        assert twice == once
        assert folded == once
        assert mixed == once
        assert set(once) == set(PRIMARY_KEYS)
    finally:
        for tables in built:
            await bookkeeping.drop_tables(connection, tables.values())
