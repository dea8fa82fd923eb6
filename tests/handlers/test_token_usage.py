"""The usage recorder's command side, without PostgreSQL: sliding expiry as the token model decides it
(``usage_model.extension``), the content-derived ``token.used`` / ``token.extended`` events, and
``RecordTokenUsage`` through the dispatcher into the in-memory store (one append per batch, a
retried batch recognised, refused to every caller)."""

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.tokens import TokenExtended, TokenIssued, TokenUsed
from services.authorization import SystemActor
from services.commands import CommandContext, Forbidden
from services.dependencies import Dependencies
from services.directory import StreamDirectory
from services.dispatch import SYSTEM_COMMANDS, Dispatcher
from services.memory_store import MemoryEventStore
from services.policy import TokenPolicy
from services.ports import AppendResult, StreamAppend
from services.roles.catalogue import load_catalogue
from services.tokens import model, usage_model
from services.tokens.commands import RecordTokenUsage, TokenExtension, TokenUse
from services.tokens.handlers import RecordedUsage

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
TOKEN = str(uuid.UUID(int=1))
OTHER = str(uuid.UUID(int=3))
ACCOUNT = str(uuid.UUID(int=2))
ORGANIZATION = str(uuid.UUID(int=9))
USAGE = SystemActor("system:usage")

instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)
windows = st.integers(min_value=1, max_value=400 * 86_400)


# -- sliding expiry ------------------------------------------------------------------------------


@given(instants, st.integers(-86_400, 86_400), windows, st.none() | st.integers(0, 400 * 86_400))
def test_an_extension_moves_to_the_capped_target_only_for_a_real_gain(
    now: datetime, expires_in: int, seconds: int, cap_in: int | None
) -> None:
    expires_at = now + timedelta(seconds=expires_in)
    cap = None if cap_in is None else now + timedelta(seconds=cap_in)
    target = (now + timedelta(seconds=seconds)).replace(microsecond=0)  # whole seconds, rounded down
    if cap is not None:
        target = min(target, cap)
    threshold = timedelta(seconds=min(seconds / 100, 60.0))

    extended = usage_model.extension(expires_at, cap, seconds, now)

    if target - expires_at > threshold:
        assert extended == target
    else:
        assert extended is None
    if extended is not None:
        assert extended > expires_at and (cap is None or extended <= cap)


def test_examples_of_sliding_expiry() -> None:
    hour = 3600
    expires_at = T0 + timedelta(hours=1)
    # 1% of an hour is 36 s: a gain of 30 s is not worth an event, 40 s is.
    assert usage_model.extension(expires_at, None, hour, T0 + timedelta(seconds=30)) is None
    assert usage_model.extension(
        expires_at, None, hour, T0 + timedelta(seconds=40)
    ) == expires_at + timedelta(seconds=40)
    # A day's window: the minute rules (1% would be 864 s).
    day = 86_400
    assert usage_model.extension(T0 + timedelta(days=1), None, day, T0 + timedelta(seconds=59)) is None
    assert usage_model.extension(T0 + timedelta(days=1), None, day, T0 + timedelta(seconds=61)) is not None
    # The cap holds.
    cap = T0 + timedelta(minutes=90)
    assert usage_model.extension(expires_at, cap, hour, T0 + timedelta(hours=1)) == cap
    # No sliding expiry, or no expiry at all: nothing to extend.
    assert usage_model.extension(expires_at, None, None, T0 + timedelta(hours=1)) is None
    assert usage_model.extension(None, None, hour, T0) is None


def test_an_extension_moves_the_tokens_updated_at_with_its_expiry() -> None:
    issued = model.evolve(
        model.Token(token_id=TOKEN),
        TokenIssued(
            token_id=TOKEN,
            account_id=ACCOUNT,
            name="t",
            secret_hash="h",
            expires_at=T0 + timedelta(hours=1),
            auto_extend_seconds=3600,
        ),
        1,
        T0,
    )
    later = T0 + timedelta(minutes=20)
    extended = model.evolve(
        issued,
        TokenExtended(token_id=TOKEN, account_id=ACCOUNT, expires_at=later + timedelta(hours=1)),
        2,
        later,
    )
    assert (extended.expires_at, extended.updated_at, extended.created_at) == (
        later + timedelta(hours=1),
        later,
        T0,
    )


# -- the events ----------------------------------------------------------------------------------


def use(token_id: str = TOKEN, at: datetime = T0, operation: str = "introspect") -> TokenUse:
    return TokenUse(
        token_id=token_id,
        account_id=ACCOUNT,
        used_at=at,
        operation=operation,
        client_address="10.0.0.1",
        user_agent="curl/8",
    )


def extension(token_id: str = TOKEN, expires_at: datetime = T0 + timedelta(hours=1)) -> TokenExtension:
    return TokenExtension(token_id=token_id, account_id=ACCOUNT, expires_at=expires_at, decided_at=T0)


@given(instants, instants)
def test_event_ids_are_derived_from_the_token_and_the_instant(first: datetime, second: datetime) -> None:
    def used(at: datetime, operation: str = "a") -> uuid.UUID:
        return usage_model.used(
            token_id=TOKEN,
            account_id=ACCOUNT,
            used_at=at,
            operation=operation,
            client_address=None,
            user_agent=None,
        ).event_id

    def extended(to: datetime, decided_at: datetime = T0) -> uuid.UUID:
        return usage_model.extended(
            token_id=TOKEN, account_id=ACCOUNT, expires_at=to, decided_at=decided_at
        ).event_id

    assert used(first) == used(first, "b") == usage_model.used_event_id(TOKEN, first)
    assert extended(first) == extended(first, second) == usage_model.extended_event_id(TOKEN, first)
    assert (used(first) == used(second)) == (first == second)
    assert (extended(first) == extended(second)) == (first == second)
    assert used(first) != extended(first)


def test_a_use_is_the_tokens_own_act() -> None:
    new_event = usage_model.used(
        token_id=TOKEN, account_id=ACCOUNT, used_at=T0, operation="op", client_address=None, user_agent="ua"
    )
    assert new_event.event == TokenUsed(
        token_id=TOKEN, account_id=ACCOUNT, used_at=T0, operation="op", client_address=None, user_agent="ua"
    )
    metadata = new_event.metadata
    assert (metadata.occurred_at, metadata.actor, metadata.actor_token_id) == (T0, ACCOUNT, TOKEN)
    later = T0 + timedelta(hours=1)
    moved = usage_model.extended(token_id=TOKEN, account_id=ACCOUNT, expires_at=later, decided_at=T0)
    assert moved.event == TokenExtended(token_id=TOKEN, account_id=ACCOUNT, expires_at=later)
    assert (moved.metadata.occurred_at, moved.metadata.actor, moved.metadata.actor_token_id) == (
        T0,
        ACCOUNT,
        TOKEN,
    )


# -- the command, through the dispatcher ---------------------------------------------------------


class CountingStore(MemoryEventStore):
    def __init__(self) -> None:
        super().__init__()
        self.appends = 0

    async def append_many(self, appends: Sequence[StreamAppend], **options: Any) -> AppendResult:
        self.appends += 1
        return await super().append_many(appends, **options)


@dataclass
class Caller:
    """An authenticated caller holding every right of the organisation."""

    account_id: str = ACCOUNT
    scopes: Sequence[str] | None = None
    roles: Sequence[Any] = ()
    organization_admin: bool = True


def dispatcher(store: MemoryEventStore) -> Dispatcher:
    deps = Dependencies(
        store=store,
        directory=StreamDirectory(store),
        catalogue=load_catalogue(None),
        token_policy=TokenPolicy(max_lifetime=timedelta(days=365), allow_non_expiring=True),
        pepper=b"a pepper of thirty-two bytes or more, for tests",
        organization_id=ORGANIZATION,
    )
    return Dispatcher(deps)


def send(store: MemoryEventStore, command: RecordTokenUsage) -> RecordedUsage:
    ctx = CommandContext(now=T0, actor=USAGE.name)
    outcome = asyncio.run(dispatcher(store).dispatch(command, USAGE, ctx))
    assert isinstance(outcome.state, RecordedUsage)
    if outcome.state.result is not None:
        assert outcome.cursor == outcome.state.result.cursor
    return outcome.state


def stored(store: MemoryEventStore, stream_id: str) -> list[tuple[uuid.UUID, object]]:
    return [(e.event_id, e.event) for e in asyncio.run(store.read_stream(stream_id))]


def test_a_batch_is_one_append_of_every_use_and_extension() -> None:
    store = CountingStore()
    later = T0 + timedelta(minutes=1)
    batch = RecordTokenUsage(
        uses=(use(TOKEN, T0), use(OTHER, T0), use(TOKEN, later)), extensions=(extension(OTHER),)
    )
    recorded = send(store, batch)

    assert store.appends == 1
    assert [a.stream_id for a in recorded.appends] == [
        model.usage_stream_of(TOKEN),
        model.usage_stream_of(OTHER),
        model.stream_of(OTHER),
    ]
    assert recorded.result is not None and len(recorded.result.events) == 4
    assert [event_id for event_id, _ in stored(store, model.usage_stream_of(TOKEN))] == [
        usage_model.used_event_id(TOKEN, T0),
        usage_model.used_event_id(TOKEN, later),
    ]
    assert stored(store, model.stream_of(OTHER)) == [
        (
            usage_model.extended_event_id(OTHER, T0 + timedelta(hours=1)),
            TokenExtended(token_id=OTHER, account_id=ACCOUNT, expires_at=T0 + timedelta(hours=1)),
        )
    ]


def test_a_retried_batch_is_recognised_and_stores_nothing_twice() -> None:
    store = MemoryEventStore()
    batch = RecordTokenUsage(uses=(use(),), extensions=(extension(),))
    first = send(store, batch)
    again = send(store, batch)
    assert again.result == first.result
    assert len(stored(store, model.usage_stream_of(TOKEN))) == 1
    assert len(stored(store, model.stream_of(TOKEN))) == 1


def test_an_empty_batch_appends_nothing() -> None:
    store = CountingStore()
    assert send(store, RecordTokenUsage()) == RecordedUsage((), None)
    assert store.appends == 0


def test_no_caller_may_record_uses() -> None:
    assert RecordTokenUsage in SYSTEM_COMMANDS
    store = MemoryEventStore()
    ctx = CommandContext(now=T0, actor=ACCOUNT)
    with pytest.raises(Forbidden):
        asyncio.run(dispatcher(store).dispatch(RecordTokenUsage(uses=(use(),)), Caller(), ctx))
    assert stored(store, model.usage_stream_of(TOKEN)) == []
