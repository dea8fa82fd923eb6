"""A realistic generated log for the read-side benchmarks and tests: accounts created, updated,
disabled and deleted; tokens issued, renamed, rotated, extended, used a lot, revoked, expired and
deleted; role assignments; teams and members (``generate``; ``LogGenerator.population`` first makes a
population of a given size, and a generator may be given its own step weights and secret hashes),
and its loading into a fresh database with COPY (``load_log``: valid rows, contiguous stream
versions, ``data`` from ``events.encode_event``, ``tx_id`` defaulted, one transaction per 50,000
events).

Over 500 lines because the generator is one state machine over every event type of the log:
split, its weights and its bookkeeping would have to be read side by side anyway.
"""

import random
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from events import Event, Metadata, encode_event
from events.accounts import (
    AccountCreated,
    AccountDeleted,
    AccountDisabled,
    AccountEnabled,
    AccountRoleAssigned,
    AccountRoleUnassigned,
    AccountUpdated,
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

COPY_CHUNK = 50_000
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

    def __init__(
        self,
        seed: int = 1,
        start: datetime | None = None,
        *,
        weights: tuple[tuple[str, int], ...] | None = None,
        secret_hash: Callable[[str, int], str] | None = None,
    ) -> None:
        """``weights`` replaces ``WEIGHTS``; ``secret_hash(token_id, secret_version)`` gives each
        secret's hash (default: random hex, not the hash of any secret)."""
        self.rng = random.Random(seed)
        self._secret_hash = secret_hash
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
        names, step_weights = zip(*(weights or self.WEIGHTS), strict=True)
        self._names: list[str] = list(names)
        self._cumulative = list(_accumulate(step_weights))

    def _id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _hash(self, token_id: str, version: int) -> str:
        if self._secret_hash is not None:
            return self._secret_hash(token_id, version)
        return f"{self.rng.getrandbits(256):064x}"

    def _emit(self, stream_id: str, event: Event) -> Generated:
        version = self.versions.get(stream_id, 0) + 1
        self.versions[stream_id] = version
        return Generated(stream_id, version, event, self.now)

    def events(self, count: int) -> Iterator[Generated]:
        produced = 0
        while produced < count:
            self._tick()
            step = self.rng.choices(self._names, cum_weights=self._cumulative)[0]
            for generated in getattr(self, "_" + step)():
                yield generated
                produced += 1
                if produced >= count:
                    return

    def population(self, accounts: int, tokens: int) -> Iterator[Generated]:
        """``accounts`` accounts created, then ``tokens`` tokens issued to them, before ``events``
        acts on them (for a log of a given size of population)."""
        for _ in range(accounts):
            self._tick()
            yield from self._account_created()
        for _ in range(tokens):
            self._tick()
            yield from self._token_issued()

    def _tick(self) -> None:
        self.now += timedelta(milliseconds=self.rng.randrange(1, 400))

    # -- accounts --------------------------------------------------------------------------------

    def _account_created(self) -> list[Generated]:
        account_id = self._id()
        self.accounts.add(account_id)
        self.account_tokens[account_id] = set()
        event = AccountCreated(
            account_id=account_id,
            name=f"svc-{account_id[:13]}",
            description=self.rng.choice(("", "CI deployer", "metrics scraper")),
            konnect_managed=self.rng.random() < 0.05,
        )
        return [self._emit(f"account-{account_id}", event)]

    def _account_updated(self) -> list[Generated]:
        if not self.accounts:
            return self._account_created()
        account_id = self.accounts.pick(self.rng)
        event = AccountUpdated(
            account_id=account_id, name=f"svc-{self._id()[:13]}", description="renamed by the bench"
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
            secret_hash=self._hash(token_id, 1),
            expires_at=None if self.rng.random() < 0.2 else self.now + timedelta(days=90),
            scopes=None if self.rng.random() < 0.5 else ("read", "write")[: self.rng.randrange(1, 3)],
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
            secret_hash=self._hash(token_id, version),
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
