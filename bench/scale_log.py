"""A generated log written through the event store's append path, as the service would have written
it: ``fill`` makes a population of accounts and tokens and then their history
(``bench.generated_log``), and appends it with ``PostgresEventStore.append_many`` in large batches,
so that every event has its hash chain link, every stream its expected version and every name and
membership its uniqueness claim (taken and released as the handlers do, ``ClaimBook``). Token secrets
are real: each is derived from the token id and its secret version under the bench's pepper, so a
sample of them can be verified later.
"""

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg

from bench.generated_log import Generated, LogGenerator
from events import Metadata, NewEvent
from events.accounts import AccountCreated, AccountDeleted, AccountUpdated
from events.teams import TeamDeleted, TeamMemberAdded, TeamMemberRemoved
from events.tokens import TokenDeleted, TokenIssued, TokenRenamed
from services.accounts import model as accounts
from services.eventstore import PostgresEventStore
from services.ports import Claim, ExpectedVersion, StreamAppend, StreamState
from services.teams import model as teams
from services.tokens import model as tokens
from services.tokens.secrets import derived_secret, secret_hash

BATCH_EVENTS = 2_000
PROGRESS_EVENTS = 250_000
ACTOR = "system:bench"
# The history after the population: the generator's mix without the steps that grow it (the
# population is made to size first) and without extensions, whose one-day expiries would be due in
# a log that ends now.
HISTORY_WEIGHTS = tuple(
    (step, weight)
    for step, weight in LogGenerator.WEIGHTS
    if step not in ("account_created", "token_issued", "token_extended")
)
AVERAGE_STEP = timedelta(milliseconds=200)  # the generator's mean time between steps


def token_secret(pepper: bytes, token_id: str, version: int) -> str:
    """The secret of version ``version`` of ``token_id`` in a filled log."""
    return derived_secret(pepper, f"bench-scale:{token_id}:{version}")


class ClaimBook:
    """The uniqueness claims the handlers take and release with each event: account names, token
    names within their account, team memberships (``services.*.model``)."""

    def __init__(self) -> None:
        self.account_names: dict[str, str] = {}
        self.token_names: dict[str, dict[str, str]] = {}  # account -> token -> name
        self.memberships: dict[str, set[str]] = {}  # team -> accounts

    def of(self, item: Generated) -> tuple[list[Claim], list[str]]:
        """(claims, releases) of the append that writes ``item``."""
        event = item.event
        match event:
            case AccountCreated():
                self.account_names[event.account_id] = event.name
                self.token_names[event.account_id] = {}
                return [Claim(accounts.name_claim(event.name), item.stream_id)], []
            case AccountUpdated(name=str(name)) if name != self.account_names[event.account_id]:
                old = self.account_names[event.account_id]
                self.account_names[event.account_id] = name
                return [Claim(accounts.name_claim(name), item.stream_id)], [accounts.name_claim(old)]
            case AccountDeleted():
                account_id = event.account_id
                released = [accounts.name_claim(self.account_names.pop(account_id))]
                released += [
                    tokens.name_claim(account_id, n) for n in self.token_names.pop(account_id).values()
                ]
                for team_id, members in self.memberships.items():
                    if account_id in members:
                        members.discard(account_id)
                        released.append(teams.membership_claim(account_id, team_id))
                return [], released
            case TokenIssued():
                self.token_names[event.account_id][event.token_id] = event.name
                return [Claim(tokens.name_claim(event.account_id, event.name), item.stream_id)], []
            case TokenRenamed():
                names = self.token_names[event.account_id]
                old, names[event.token_id] = names[event.token_id], event.name
                claim = Claim(tokens.name_claim(event.account_id, event.name), item.stream_id)
                return [claim], [tokens.name_claim(event.account_id, old)]
            case TokenDeleted():
                name = self.token_names.get(event.account_id, {}).pop(event.token_id, None)
                return [], [] if name is None else [tokens.name_claim(event.account_id, name)]
            case TeamMemberAdded():
                self.memberships.setdefault(event.team_id, set()).add(event.account_id)
                return [Claim(teams.membership_claim(event.account_id, event.team_id), item.stream_id)], []
            case TeamMemberRemoved():
                self.memberships.get(event.team_id, set()).discard(event.account_id)
                return [], [teams.membership_claim(event.account_id, event.team_id)]
            case TeamDeleted():
                members = sorted(self.memberships.pop(event.team_id, set()))
                return [], [teams.membership_claim(account_id, event.team_id) for account_id in members]
        return [], []


@dataclass
class _Batch:
    """One ``append_many``: the events of each stream in order, the claims and releases; no stream
    and no claim key twice (so the batch means what the events did one by one)."""

    appends: dict[str, tuple[ExpectedVersion, list[NewEvent]]] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)
    releases: list[str] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    events: int = 0

    def takes(self, item: Generated, claims: list[Claim], releases: list[str]) -> bool:
        if item.stream_id in self.appends and next(reversed(self.appends)) != item.stream_id:
            return False
        keys = {c.key for c in claims} | set(releases)
        return not keys & self.keys

    def add(self, item: Generated, claims: list[Claim], releases: list[str]) -> None:
        expected: ExpectedVersion = item.stream_version - 1 or StreamState.NO_STREAM
        _, events = self.appends.setdefault(item.stream_id, (expected, []))
        metadata = Metadata(occurred_at=item.occurred_at, actor=ACTOR)
        events.append(NewEvent(event=item.event, metadata=metadata))
        self.claims += claims
        self.releases += releases
        self.keys |= {c.key for c in claims} | set(releases)
        self.events += 1

    def request(self) -> list[StreamAppend]:
        return [StreamAppend(s, tuple(events), expected) for s, (expected, events) in self.appends.items()]


def batches(log: Iterable[Generated], book: ClaimBook, size: int = BATCH_EVENTS) -> Iterator[_Batch]:
    batch = _Batch()
    for item in log:
        claims, releases = book.of(item)
        if batch.events >= size or not batch.takes(item, claims, releases):
            yield batch
            batch = _Batch()
        batch.add(item, claims, releases)
    if batch.events:
        yield batch


@dataclass(frozen=True)
class Filled:
    events: int
    seconds: float
    generator: LogGenerator
    """The generator's final state: which accounts and tokens are live, each token's secret version."""


async def fill(
    pool: asyncpg.Pool,
    *,
    accounts: int,
    tokens: int,
    events: int,
    pepper: bytes,
    seed: int = 1,
    progress: Callable[[int, float], None] | None = None,
) -> Filled:
    """Appends ``accounts`` account creations, ``tokens`` token issues and then history up to
    ``events`` events in all, ending about now; the next batch is made while one is written.
    ``progress(events written, seconds)`` is called every ``PROGRESS_EVENTS``."""
    history = max(0, events - accounts - tokens)
    start = datetime.now(UTC) - AVERAGE_STEP * (accounts + tokens + history) * 1.2
    generator = LogGenerator(
        seed,
        start,
        weights=HISTORY_WEIGHTS,
        secret_hash=lambda token_id, version: secret_hash(token_secret(pepper, token_id, version), pepper),
    )

    def log() -> Iterator[Generated]:
        yield from generator.population(accounts, tokens)
        yield from generator.events(history)

    store = PostgresEventStore(pool, announce=False)
    made = batches(log(), ClaimBook())
    written = 0
    began = time.perf_counter()
    pending: asyncio.Task[object] | None = None
    while True:
        batch = await asyncio.to_thread(next, made, None)  # made while the previous one is written
        if pending is not None:
            await pending
        if batch is None:
            return Filled(written, time.perf_counter() - began, generator)
        pending = asyncio.create_task(store.append_many(batch.request(), batch.claims, batch.releases))
        if progress is not None and (written + batch.events) // PROGRESS_EVENTS > written // PROGRESS_EVENTS:
            progress(written, time.perf_counter() - began)
        written += batch.events
