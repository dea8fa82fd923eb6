"""The world a handler test runs in: a fresh in-memory event store, the directory folding it, the
deployment's policy and role catalogue, and the dispatcher over them; callers built as the token
verifier builds them; and the given / when / then steps.

* ``given(*events)`` appends each event to its own stream (``account-``, ``team-``, ``token-`` and
  the event's id), each in an append of its own, with the uniqueness claims its command takes
  (an account's name, a token's name within its account, a membership) and the one a membership's
  end releases, so the directory finds what the history holds. Other claims are not mirrored: a
  test that needs a rename's or a deletion's claims builds that history with ``when``.
* ``when(command, actor=..., key=...)`` dispatches it, as the HTTP door does: the context names the
  caller's account and token, and the idempotency key when one is given. A world made with
  ``claims=MemoryClaims()`` hands a caller's key to the dispatcher instead, which claims it as the
  HTTP door's does (scoped to the caller's token and the command).
* ``then()`` is what the last ``when`` appended, as (stream, event) pairs in log order;
  ``then_raises(error, command, ...)`` dispatches, expects ``error``, and checks that nothing was
  appended and no claim moved.
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events import Event, Metadata, NewEvent, RecordedEvent
from events.accounts import AccountCreated, AccountRoleAssigned
from events.envelope import LOG_START
from events.teams import TeamCreated, TeamMemberAdded, TeamMemberRemoved, TeamRoleAssigned
from events.tokens import TokenIssued
from services.accounts import model as accounts
from services.auth.principal import DIRECT, Principal, RoleGrant
from services.authorization import Actor, SystemActor
from services.commands import CommandContext, Outcome, Unchanged
from services.dependencies import Dependencies
from services.directory import StreamDirectory
from services.dispatch import Dispatcher
from services.idempotency_claims import Claimed, ClaimOutcome, InProgress, Mismatch
from services.memory_store import MemoryEventStore
from services.policy import TokenPolicy
from services.ports import Claim, StreamState
from services.roles.catalogue import IDENTITY_ENTITY_TYPE, load_catalogue
from services.teams import model as teams
from services.tokens import model as tokens
from services.tokens.secrets import generate_secret, secret_hash

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
ORG = "4a1e2b3c-0000-4000-8000-00000000000a"
PEPPER = b"a pepper of thirty-two bytes or more, for handler tests"
POLICY = TokenPolicy(max_lifetime=timedelta(days=365), allow_non_expiring=True)
CATALOGUE = load_catalogue(None)
SYSTEM_ACTOR_NAME = "system:test"
"""What a context of ``SYSTEM`` names as its actor (bootstrap and the scheduler name themselves)."""


def new_id() -> str:
    return str(uuid.uuid4())


def grant(
    role_name: str,
    entity_type_name: str = IDENTITY_ENTITY_TYPE,
    entity_id: str = ORG,
    entity_region: str = "*",
    source: str = DIRECT,
) -> RoleGrant:
    """A role held by a caller, as the verifier reports it (Identity roles on the organization)."""
    return RoleGrant(
        role_name=role_name,
        entity_id=entity_id,
        entity_type_name=entity_type_name,
        entity_region=entity_region,
        source=source,
    )


def caller(
    *roles: RoleGrant | str,
    scopes: Sequence[str] | None = None,
    organization_admin: bool = False,
    account_id: str | None = None,
) -> Principal:
    """A verified token of an account holding ``roles`` (a bare name is that Identity role)."""
    return Principal(
        token_id=new_id(),
        account_id=account_id or new_id(),
        account_name="caller",
        token_name="caller's token",
        scopes=None if scopes is None else tuple(scopes),
        roles=tuple(grant(role) if isinstance(role, str) else role for role in roles),
        organization_admin=organization_admin,
        issued_at=T0 - timedelta(days=1),
        expires_at=None,
        secret_version=1,
    )


ADMIN = caller("Admin")
"""The caller of most tests: an account holding the Identity Admin role, with an unscoped token."""


def account_created(name: str | None = None, **fields: Any) -> AccountCreated:
    return AccountCreated(account_id=fields.pop("account_id", new_id()), name=name or new_id(), **fields)


def team_created(name: str | None = None, **fields: Any) -> TeamCreated:
    return TeamCreated(team_id=fields.pop("team_id", new_id()), name=name or new_id(), **fields)


def token_issued(account_id: str, name: str | None = None, **fields: Any) -> TokenIssued:
    """A token issued with a random secret (its hash under the world's pepper), never expiring."""
    fields.setdefault("secret_hash", secret_hash(generate_secret(), PEPPER))
    fields.setdefault("expires_at", None)
    return TokenIssued(
        token_id=fields.pop("token_id", new_id()), account_id=account_id, name=name or new_id(), **fields
    )


def role_assigned(
    holder: AccountCreated | TeamCreated, role_name: str, **fields: Any
) -> AccountRoleAssigned | TeamRoleAssigned:
    """``holder``'s assignment of ``role_name`` (by default an Identity role on the organization)."""
    values: dict[str, Any] = {
        "assignment_id": new_id(),
        "role_name": role_name,
        "entity_id": ORG,
        "entity_type_name": IDENTITY_ENTITY_TYPE,
        "entity_region": "*",
        **fields,
    }
    if isinstance(holder, AccountCreated):
        return AccountRoleAssigned(account_id=holder.account_id, **values)
    return TeamRoleAssigned(team_id=holder.team_id, **values)


def stream_of(event: Event) -> str:
    """The stream an event of the command side belongs to."""
    if hasattr(event, "token_id"):
        return tokens.stream_of(event.token_id)
    if hasattr(event, "team_id"):
        return teams.stream_of(event.team_id)
    return accounts.stream_of(event.account_id)  # type: ignore[attr-defined]


def _claims(event: Event, stream: str) -> tuple[list[Claim], list[str]]:
    """The claims taken and released by the append of ``event`` that its command makes."""
    match event:
        case AccountCreated():
            return [Claim(accounts.name_claim(event.name), stream)], []
        case TokenIssued():
            return [Claim(tokens.name_claim(event.account_id, event.name), stream)], []
        case TeamMemberAdded():
            return [Claim(teams.membership_claim(event.account_id, event.team_id), stream)], []
        case TeamMemberRemoved():
            return [], [teams.membership_claim(event.account_id, event.team_id)]
    return [], []


class MemoryClaims:
    """The idempotency claims port in memory (no expiry, no pending timeout): what a retry finds of
    an earlier run under its key, as the PostgreSQL table keeps it."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], tuple[str, uuid.UUID | None, Unchanged | None]] = {}
        """(scope, key) -> fingerprint, the pending claim (None once ended), what a no-op kept."""

    async def claim(self, scope: str, key: str, fingerprint: str) -> ClaimOutcome:
        stored = self._rows.get((scope, key))
        if stored is not None and stored[0] != fingerprint:
            return Mismatch()
        if stored is not None and stored[1] is not None:
            return InProgress()
        claimed = Claimed(uuid.uuid4(), None if stored is None else stored[2])
        self._rows[(scope, key)] = (fingerprint, claimed.claim_id, claimed.unchanged)
        return claimed

    async def end(self, scope: str, key: str, claim: Claimed, unchanged: Unchanged | None = None) -> None:
        fingerprint, pending, _ = self._rows[(scope, key)]
        if pending == claim.claim_id:
            self._rows[(scope, key)] = (fingerprint, None, unchanged)


class World:
    """One test's store, dependencies and dispatcher, a clock it moves, and what it last did."""

    def __init__(
        self,
        policy: TokenPolicy = POLICY,
        store: MemoryEventStore | None = None,
        claims: MemoryClaims | None = None,
    ) -> None:
        self.now = T0
        self.store = store or MemoryEventStore()
        self.deps = Dependencies(
            store=self.store,
            directory=StreamDirectory(self.store),
            catalogue=CATALOGUE,
            token_policy=policy,
            pepper=PEPPER,
            organization_id=ORG,
        )
        self.dispatcher = Dispatcher(self.deps, claims=claims)
        self._claimed_keys = claims is not None
        self._appended: list[RecordedEvent] = []

    async def given(self, *events: Event, at: datetime | None = None) -> None:
        """The history: each event appended to its stream, recorded as occurring ``at`` (now)."""
        metadata = Metadata(occurred_at=at or self.now, actor="given")
        for event in events:
            stream = stream_of(event)
            claims, releases = _claims(event, stream)
            new = [NewEvent(event=event, metadata=metadata)]
            await self.store.append(stream, new, StreamState.ANY, claims=claims, releases=releases)

    def context(self, actor: Actor | SystemActor, key: str | None = None) -> CommandContext:
        """The context a door gives a command of ``actor`` at the world's now."""
        if isinstance(actor, SystemActor):
            return CommandContext(now=self.now, actor=SYSTEM_ACTOR_NAME, idempotency_key=key)
        return CommandContext(
            now=self.now,
            actor=actor.account_id,
            actor_token_id=getattr(actor, "token_id", None),
            correlation_id="correlation",
            idempotency_key=key,
        )

    async def when(
        self,
        command: object,
        actor: Actor | SystemActor = ADMIN,
        *,
        key: str | None = None,
        ctx: CommandContext | None = None,
    ) -> Outcome[Any]:
        """Dispatches ``command`` as ``actor``; ``then()`` is what it appended, even when it raised."""
        before = len(await self.log())
        try:
            if self._claimed_keys and key is not None and not isinstance(actor, SystemActor):
                return await self.dispatcher.dispatch(command, actor, ctx or self.context(actor), key)
            return await self.dispatcher.dispatch(command, actor, ctx or self.context(actor, key))
        finally:
            self._appended = (await self.log())[before:]

    def then(self) -> list[tuple[str, Event]]:
        """What the last ``when`` appended: (stream, event), in log order."""
        return [(recorded.stream_id, recorded.event) for recorded in self._appended]

    def then_recorded(self) -> list[RecordedEvent]:
        """What the last ``when`` appended, as the log holds it (ids, metadata)."""
        return list(self._appended)

    async def then_raises(
        self,
        error: type[Exception],
        command: object,
        actor: Actor | SystemActor = ADMIN,
        *,
        key: str | None = None,
        match: str | None = None,
    ) -> Exception:
        """``command`` is refused with ``error``, appending nothing and moving no claim."""
        claims = await self.claims()
        with pytest.raises(error, match=match) as refused:
            await self.when(command, actor, key=key)
        assert self.then() == []
        assert await self.claims() == claims
        return refused.value

    async def log(self) -> list[RecordedEvent]:
        return await self.store.read_all(LOG_START, limit=1_000_000)

    async def claims(self) -> dict[str, str]:
        """Every uniqueness claim held, and the stream holding it."""
        return await self.store.claims_with_prefix("")

    async def stream(self, stream_id: str) -> list[Event]:
        return [recorded.event for recorded in await self.store.read_stream(stream_id)]
