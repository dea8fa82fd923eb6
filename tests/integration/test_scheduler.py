"""The scheduler against a real PostgreSQL, with the due-index projection running: expiry on time,
warnings, rotation due, secret retirement, catching up after downtime in order, moot deadlines, and
two schedulers at once emitting every event exactly once.

Most tests give the scheduler a clock ahead of real time, so the deadlines they need are already
past when it starts (that is exactly the situation after downtime); the first one runs in real time.
"""

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from events import RecordedEvent
from events.tokens import TokenExtended
from projections.deadlines import DeadlinesProjection
from services.accounts.commands import CreateAccount, UpdateAccount
from services.authorization import SYSTEM
from services.commands import CommandContext
from services.dependencies import Dependencies
from services.directory import StreamDirectory
from services.dispatch import Dispatcher
from services.policy import TokenPolicy
from services.ports import StreamAppend
from services.roles.catalogue import load_catalogue
from services.scheduler import SCHEDULER_ACTOR, Scheduler
from services.tokens.commands import IssueToken, RevokeToken, RotateToken
from services.tokens.model import stream_of
from tests.integration.test_projection_support import World, new_event, running

SCHEDULED = ("token.expired", "token.expiring_soon", "token.rotation_due", "token.secret_retired")
NO_LEADS: tuple[timedelta, ...] = ()


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Setup:
    world: World
    deps: Dependencies

    @property
    def dispatcher(self) -> Dispatcher:
        return Dispatcher(self.deps)

    async def send(self, command: object) -> Any:
        """Runs ``command`` as tokenledger itself; its outcome's state."""
        ctx = CommandContext(now=utc_now(), actor="system:tests")
        return (await self.dispatcher.dispatch(command, SYSTEM, ctx)).state

    async def account(self, rotation_period_seconds: int | None = None) -> str:
        name = f"bot-{uuid.uuid4().hex[:12]}"
        command = CreateAccount(name=name, description="", rotation_period_seconds=rotation_period_seconds)
        account_id: str = (await self.send(command)).account_id
        return account_id

    async def token(self, account_id: str, expires_in: timedelta | None) -> str:
        expires_at = None if expires_in is None else utc_now() + expires_in
        command = IssueToken(account_id=account_id, name=f"t-{uuid.uuid4().hex[:12]}", expires_at=expires_at)
        token_id: str = (await self.send(command)).token.token_id
        return token_id

    def scheduler(
        self,
        *,
        ahead: timedelta = timedelta(0),
        leads: Sequence[timedelta] = NO_LEADS,
        rotation_period: timedelta | None = None,
    ) -> Scheduler:
        return Scheduler(
            pool=self.world.pool,
            dispatcher=self.dispatcher,
            projections=self.world.projections,
            notifications=self.world.notifications,
            leads=leads,
            rotation_period=rotation_period,
            clock=lambda: utc_now() + ahead,
            max_sleep=5.0,
            retry_delay=0.2,
            batch_size=7,  # several pages in the tests that emit more
        )

    async def scheduled(self, token_ids: Sequence[str]) -> list[RecordedEvent]:
        """The scheduler's events in the token streams, in log order."""
        found = [
            recorded
            for token_id in token_ids
            for recorded in await self.deps.store.read_stream(stream_of(token_id))
            if recorded.type in SCHEDULED
        ]
        return sorted(found, key=lambda recorded: recorded.cursor)

    async def indexed(self) -> None:
        """The due index holds every event appended so far."""
        assert await self.world.projections.wait_until_current(10.0)


@pytest.fixture
async def setup(empty_database: str) -> AsyncIterator[Setup]:
    async with running(empty_database, [DeadlinesProjection()]) as world:
        deps = Dependencies(
            store=world.store,
            directory=StreamDirectory(world.store),
            catalogue=load_catalogue(None),
            token_policy=TokenPolicy(max_lifetime=timedelta(days=365), allow_non_expiring=True),
            pepper=b"scheduler-test-pepper",
            organization_id="00000000-0000-0000-0000-0000000000aa",
        )
        yield Setup(world, deps)


@contextlib.asynccontextmanager
async def started(*schedulers: Scheduler) -> AsyncIterator[None]:
    for scheduler in schedulers:
        await scheduler.start()
    try:
        yield
    finally:
        for scheduler in schedulers:
            await scheduler.stop()


async def until(condition: Callable[[], Any], timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.02)


def summary(events: Sequence[RecordedEvent]) -> list[tuple[str, str]]:
    return [(recorded.stream_id, recorded.type) for recorded in events]


async def test_a_token_two_seconds_ahead_is_expired_in_the_log_within_three_seconds(setup: Setup) -> None:
    scheduler = setup.scheduler(leads=(timedelta(seconds=1),))
    async with started(scheduler):
        await asyncio.sleep(0.2)  # the scheduler is asleep: the token's deadline must wake it
        account = await setup.account()
        issued_at = utc_now()
        token = await setup.token(account, timedelta(seconds=2))

        async def expired() -> bool:
            return any(e.type == "token.expired" for e in await setup.scheduled([token]))

        await until(expired, timeout=3.0)
    events = await setup.scheduled([token])
    assert [e.type for e in events] == ["token.expiring_soon", "token.expired"]
    expiry = events[-1]
    assert expiry.metadata.actor == SCHEDULER_ACTOR
    assert expiry.metadata.occurred_at >= expiry.event.expires_at  # type: ignore[attr-defined]
    assert expiry.recorded_at - expiry.event.expires_at < timedelta(seconds=1)  # type: ignore[attr-defined]
    assert expiry.recorded_at - issued_at < timedelta(seconds=3)
    assert events[0].event.lead_seconds == 1  # type: ignore[attr-defined]


async def test_warnings_follow_the_lead_times_and_skip_overtaken_ones(setup: Setup) -> None:
    account = await setup.account()
    in_ten_days = await setup.token(account, timedelta(days=10))
    in_three_days = await setup.token(account, timedelta(days=3))
    in_ten_hours = await setup.token(account, timedelta(hours=10))
    leads = (timedelta(days=7), timedelta(days=1))
    await setup.indexed()

    assert await setup.scheduler(leads=leads).tick() == 2
    await setup.indexed()
    assert await setup.scheduler(leads=leads).tick() == 0, "a warning is recorded once"
    later = setup.scheduler(leads=leads, ahead=timedelta(days=2, hours=12))
    assert await later.tick() == 2
    await setup.indexed()

    events = await setup.scheduled([in_ten_days, in_three_days, in_ten_hours])
    day, week = 86400, 7 * 86400
    # Each token's deadlines in due order (different tokens' are emitted side by side).
    per_token: dict[str, list[tuple[str, int | None]]] = {}
    for e in events:
        per_token.setdefault(e.stream_id, []).append((e.type, getattr(e.event, "lead_seconds", None)))
    assert per_token == {
        # its 7-day deadline was overtaken by the 1-day one
        stream_of(in_ten_hours): [("token.expiring_soon", day), ("token.expired", None)],
        stream_of(in_three_days): [("token.expiring_soon", week), ("token.expiring_soon", day)],
    }


async def test_rotation_due_follows_the_account_period_or_the_deployment_period(setup: Setup) -> None:
    own_period = await setup.account(rotation_period_seconds=30 * 86400)
    default_period = await setup.account()
    later_period = await setup.account()
    ruled_by_account = await setup.token(own_period, None)
    ruled_by_deployment = await setup.token(default_period, None)
    given_a_period_later = await setup.token(later_period, None)
    await setup.send(UpdateAccount(account_id=later_period, rotation_period_seconds=2 * 86400))
    await setup.indexed()

    ten_days_later = setup.scheduler(ahead=timedelta(days=10), rotation_period=timedelta(days=7))
    assert await ten_days_later.tick() == 2
    await setup.indexed()
    events = await setup.scheduled([ruled_by_account, ruled_by_deployment, given_a_period_later])
    assert sorted(e.event.token_id for e in events) == sorted([ruled_by_deployment, given_a_period_later])  # type: ignore[attr-defined]
    assert {e.type for e in events} == {"token.rotation_due"}
    assert await ten_days_later.tick() == 0, "once per secret"

    await setup.send(RotateToken(account_id=default_period, token_id=ruled_by_deployment))
    await setup.indexed()
    five_days_later = setup.scheduler(ahead=timedelta(days=5), rotation_period=timedelta(days=7))
    assert await five_days_later.tick() == 0, "the new secret is five days old"
    assert await ten_days_later.tick() == 1


async def test_the_previous_secret_is_retired_when_its_grace_period_ends(setup: Setup) -> None:
    account = await setup.account()
    token = await setup.token(account, None)
    await setup.send(RotateToken(account_id=account, token_id=token, grace_period_seconds=3600))
    await setup.indexed()

    assert await setup.scheduler(ahead=timedelta(minutes=30)).tick() == 0
    assert await setup.scheduler(ahead=timedelta(hours=2)).tick() == 1
    await setup.indexed()
    (retired,) = await setup.scheduled([token])
    assert retired.type == "token.secret_retired"
    assert retired.event.secret_version == 1  # type: ignore[attr-defined]


async def test_missed_deadlines_are_emitted_on_start_each_tokens_in_order(setup: Setup) -> None:
    account = await setup.account()
    first = await setup.token(account, timedelta(hours=1))
    second = await setup.token(account, timedelta(hours=3))
    third = await setup.token(account, timedelta(hours=2))
    await setup.send(RotateToken(account_id=account, token_id=second, grace_period_seconds=1800))
    await setup.indexed()

    scheduler = setup.scheduler(ahead=timedelta(days=1), leads=(timedelta(days=7),))
    async with started(scheduler):

        async def all_emitted() -> bool:
            return len(await setup.scheduled([first, second, third])) == 4

        await until(all_emitted, timeout=5.0)
    events = await setup.scheduled([first, second, third])
    # Each token's missed deadlines in due order, each once (different tokens' side by side).
    assert [e for e in summary(events) if e[0] == stream_of(second)] == [
        (stream_of(second), "token.secret_retired"),
        (stream_of(second), "token.expired"),
    ]
    assert sorted(summary(events)) == sorted(
        [
            (stream_of(second), "token.secret_retired"),
            (stream_of(first), "token.expired"),
            (stream_of(third), "token.expired"),
            (stream_of(second), "token.expired"),
        ]
    )


async def test_moot_deadlines_emit_nothing(setup: Setup) -> None:
    account = await setup.account()
    revoked = await setup.token(account, timedelta(hours=1))
    extended = await setup.token(account, timedelta(hours=1))
    await setup.send(RevokeToken(account_id=account, token_id=revoked))
    new_expiry = utc_now() + timedelta(days=3)
    extension = new_event(TokenExtended(token_id=extended, account_id=account, expires_at=new_expiry))
    await setup.deps.store.append_many([StreamAppend(stream_of(extended), [extension], 1)])
    await setup.indexed()

    assert await setup.scheduler(ahead=timedelta(days=1), rotation_period=timedelta(hours=1)).tick() == 1
    await setup.indexed()
    events = await setup.scheduled([revoked, extended])
    assert summary(events) == [(stream_of(extended), "token.rotation_due")]


async def test_two_schedulers_at_once_emit_every_event_exactly_once(setup: Setup) -> None:
    account = await setup.account()
    expiring = [await setup.token(account, timedelta(hours=n + 1)) for n in range(12)]
    warned = [await setup.token(account, timedelta(days=2, hours=n)) for n in range(12)]
    await setup.indexed()
    leads = (timedelta(days=7), timedelta(days=1))
    one, two = (setup.scheduler(ahead=timedelta(days=1), leads=leads) for _ in range(2))

    emitted = await asyncio.gather(one.tick(), two.tick())
    await setup.indexed()
    events = await setup.scheduled([*expiring, *warned])
    assert Counter((e.stream_id, e.type) for e in events) == Counter(
        [(stream_of(t), "token.expired") for t in expiring]
        + [(stream_of(t), "token.expiring_soon") for t in warned]
    )
    assert sum(emitted) >= len(events), "a retried append counts for the scheduler that made it"
    assert list(await asyncio.gather(one.tick(), two.tick())) == [0, 0]


async def test_the_metrics_show_how_late_each_deadline_was_emitted(setup: Setup) -> None:
    def sample(name: str) -> float:
        return REGISTRY.get_sample_value(name, {"kind": "expiry"}) or 0.0

    account = await setup.account()
    tokens = [await setup.token(account, timedelta(hours=hours)) for hours in (1, 2, 3)]
    await setup.indexed()
    count, total = (
        sample("tokenledger_scheduler_lateness_seconds_count"),
        sample("tokenledger_scheduler_lateness_seconds_sum"),
    )
    assert await setup.scheduler(ahead=timedelta(days=1)).tick() == 3
    assert len(await setup.scheduled(tokens)) == 3
    assert sample("tokenledger_scheduler_lateness_seconds_count") - count == 3
    late = sample("tokenledger_scheduler_lateness_seconds_sum") - total
    assert abs(late - timedelta(hours=23 + 22 + 21).total_seconds()) < 60
    assert REGISTRY.get_sample_value("tokenledger_scheduler_backlog") == 0


async def _account_events(setup: Setup, account_id: str) -> list[RecordedEvent]:
    return [
        recorded
        for recorded in await setup.deps.store.read_stream(f"account-{account_id}")
        if recorded.type in ("account.expired", "account.expiring_soon")
    ]


async def test_an_account_two_seconds_ahead_is_warned_of_then_expired_within_three_seconds(
    setup: Setup,
) -> None:
    scheduler = setup.scheduler(leads=(timedelta(seconds=1),))
    async with started(scheduler):
        await asyncio.sleep(0.2)  # the scheduler is asleep: the account's deadline must wake it
        lifetime = utc_now() + timedelta(seconds=2)
        account_id = (
            await setup.send(
                CreateAccount(name=f"temp-{uuid.uuid4().hex[:12]}", description="", expires_at=lifetime)
            )
        ).account_id

        async def expired() -> bool:
            return any(e.type == "account.expired" for e in await _account_events(setup, account_id))

        await until(expired, timeout=3.0)
    warning, expiry = await _account_events(setup, account_id)
    assert (warning.type, warning.event.lead_seconds) == ("account.expiring_soon", 1)  # type: ignore[attr-defined]
    assert expiry.metadata.actor == SCHEDULER_ACTOR and expiry.event.expires_at == lifetime  # type: ignore[attr-defined]
    assert expiry.recorded_at - lifetime < timedelta(seconds=1)


async def test_account_lifetimes_are_expired_once_and_again_only_when_renewed(setup: Setup) -> None:
    lifetime = utc_now() + timedelta(days=3)
    temp = (
        await setup.send(
            CreateAccount(name=f"temp-{uuid.uuid4().hex[:12]}", description="", expires_at=lifetime)
        )
    ).account_id
    kept = await setup.account()
    await setup.indexed()
    week_later = setup.scheduler(ahead=timedelta(days=7), leads=(timedelta(days=1),))
    assert await week_later.tick() == 1
    await setup.indexed()
    assert await week_later.tick() == 0, "an expiry is recorded once"
    await setup.send(UpdateAccount(account_id=temp, name="renamed"))
    await setup.indexed()
    assert await week_later.tick() == 0, "an update that keeps the lifetime is not a new deadline"
    await setup.send(UpdateAccount(account_id=temp, enabled=True, expires_at=utc_now() + timedelta(days=5)))
    await setup.indexed()
    assert await week_later.tick() == 1
    assert [e.type for e in await _account_events(setup, temp)] == ["account.expired", "account.expired"]
    assert await _account_events(setup, kept) == []
