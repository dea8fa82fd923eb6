"""The scheduler's commands (expire, warn of expiry, flag rotation due, retire a replaced secret),
sent by tokenledger itself: given a token (or, for two schedulers on one deadline, an account with
a lifetime too: ``test_account_lifetimes`` has the rest of those), when the command at a time, then
its event, or nothing when the deadline is not reached or moot. Each appends its event once per
deadline, however often it is sent, and two schedulers deciding on the same read of the stream
append it once (its event id is derived from the deadline)."""

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import msgspec
import pytest

from events import RecordedEvent
from events.tokens import TokenExpired, TokenExpiringSoon, TokenRevoked, TokenRotationDue, TokenSecretRetired
from services.accounts.commands import ExpireAccount, UpdateAccount, WarnAccountExpiring
from services.authorization import SYSTEM
from services.dispatch import Dispatcher
from services.tokens.commands import (
    ExpireToken,
    FlagTokenRotationDue,
    RetireTokenSecret,
    RotateToken,
    WarnTokenExpiring,
)
from tests.handlers.world import T0, World, account_created, token_issued

HOUR, DAY = timedelta(hours=1), timedelta(days=1)
LEADS = (7 * DAY, DAY)


def _token(token_id: str) -> str:
    return f"token-{token_id}"


async def _given_token(world: World, **fields: Any) -> tuple[str, str]:
    """An account and a token of it issued at ``T0``: (account id, token id)."""
    account = account_created(rotation_period_seconds=fields.pop("rotation_period_seconds", None))
    token = token_issued(account.account_id, **fields)
    await world.given(account, token)
    return account.account_id, token.token_id


# -- ExpireToken --------------------------------------------------------------------------------


async def test_expire_token_records_the_expiry_once_it_has_passed(world: World) -> None:
    account_id, token_id = await _given_token(world, expires_at=T0 + HOUR)
    world.now = T0 + HOUR - timedelta(seconds=1)
    early = await world.when(ExpireToken(token_id=token_id), SYSTEM)
    assert (world.then(), early.cursor) == ([], None)
    world.now = T0 + HOUR
    outcome = await world.when(ExpireToken(token_id=token_id), SYSTEM)
    assert world.then() == [
        (_token(token_id), TokenExpired(token_id=token_id, account_id=account_id, expires_at=T0 + HOUR))
    ]
    assert outcome.state.state == "EXPIRED"
    await world.when(ExpireToken(token_id=token_id), SYSTEM)
    assert world.then() == []


async def test_expire_token_is_moot_for_a_revoked_missing_or_never_expiring_token(world: World) -> None:
    account_id, revoked = await _given_token(world, expires_at=T0 + HOUR)
    await world.given(TokenRevoked(token_id=revoked, account_id=account_id, reason="revoked"))
    _, forever = await _given_token(world)
    world.now = T0 + DAY
    for token_id in (revoked, forever, "nobody"):
        await world.when(ExpireToken(token_id=token_id), SYSTEM)
        assert world.then() == []


# -- WarnTokenExpiring --------------------------------------------------------------------------


async def test_warn_token_expiring_records_each_lead_reached_once(world: World) -> None:
    expires_at = T0 + 10 * DAY
    account_id, token_id = await _given_token(world, expires_at=expires_at)
    command = WarnTokenExpiring(token_id=token_id, leads=LEADS)
    world.now = T0 + DAY
    await world.when(command, SYSTEM)
    assert world.then() == []
    world.now = expires_at - 7 * DAY
    await world.when(command, SYSTEM)
    warning = TokenExpiringSoon(
        token_id=token_id, account_id=account_id, expires_at=expires_at, lead_seconds=7 * 86400
    )
    assert world.then() == [(_token(token_id), warning)]
    await world.when(command, SYSTEM)
    assert world.then() == []
    world.now = expires_at - HOUR
    await world.when(command, SYSTEM)
    assert world.then() == [(_token(token_id), msgspec.structs.replace(warning, lead_seconds=86400))]


async def test_warn_token_expiring_skips_leads_a_short_token_overtook(world: World) -> None:
    expires_at = T0 + 12 * HOUR
    account_id, token_id = await _given_token(world, expires_at=expires_at)
    await world.when(WarnTokenExpiring(token_id=token_id, leads=LEADS), SYSTEM)
    assert world.then() == [
        (
            _token(token_id),
            TokenExpiringSoon(
                token_id=token_id, account_id=account_id, expires_at=expires_at, lead_seconds=86400
            ),
        )
    ]


async def test_warn_token_expiring_is_moot_once_expired_or_revoked(world: World) -> None:
    account_id, token_id = await _given_token(world, expires_at=T0 + HOUR)
    world.now = T0 + 2 * HOUR
    await world.when(WarnTokenExpiring(token_id=token_id, leads=LEADS), SYSTEM)
    assert world.then() == []
    _, revoked = await _given_token(world, expires_at=T0 + 3 * HOUR)
    await world.given(TokenRevoked(token_id=revoked, account_id=account_id, reason="revoked"))
    await world.when(WarnTokenExpiring(token_id=revoked, leads=LEADS), SYSTEM)
    assert world.then() == []


# -- FlagTokenRotationDue -----------------------------------------------------------------------


async def test_rotation_is_due_after_the_accounts_own_period(world: World) -> None:
    account_id, token_id = await _given_token(world, rotation_period_seconds=3600)
    command = FlagTokenRotationDue(token_id=token_id, deployment_period=DAY)
    world.now = T0 + 2 * HOUR
    await world.when(command, SYSTEM)
    assert world.then() == [
        (_token(token_id), TokenRotationDue(token_id=token_id, account_id=account_id, due_at=T0 + HOUR))
    ]
    await world.when(command, SYSTEM)
    assert world.then() == []


async def test_rotation_is_due_after_the_deployments_period_otherwise(world: World) -> None:
    account_id, token_id = await _given_token(world)
    world.now = T0 + 2 * HOUR
    await world.when(FlagTokenRotationDue(token_id=token_id, deployment_period=DAY), SYSTEM)
    assert world.then() == []
    await world.when(FlagTokenRotationDue(token_id=token_id, deployment_period=None), SYSTEM)
    assert world.then() == []
    world.now = T0 + 2 * DAY
    await world.when(FlagTokenRotationDue(token_id=token_id, deployment_period=DAY), SYSTEM)
    assert world.then() == [
        (_token(token_id), TokenRotationDue(token_id=token_id, account_id=account_id, due_at=T0 + DAY))
    ]


async def test_a_rotation_restarts_the_period(world: World) -> None:
    account_id, token_id = await _given_token(world, rotation_period_seconds=3600)
    world.now = T0 + 2 * HOUR
    await world.when(RotateToken(account_id=account_id, token_id=token_id))
    await world.when(FlagTokenRotationDue(token_id=token_id, deployment_period=None), SYSTEM)
    assert world.then() == []
    await world.when(FlagTokenRotationDue(token_id="nobody", deployment_period=DAY), SYSTEM)
    assert world.then() == []


# -- RetireTokenSecret --------------------------------------------------------------------------


async def test_retire_token_secret_records_the_end_of_the_grace_period(world: World) -> None:
    account_id, token_id = await _given_token(world)
    await world.when(RotateToken(account_id=account_id, token_id=token_id, grace_period_seconds=60))
    command = RetireTokenSecret(token_id=token_id, secret_version=1)
    world.now = T0 + timedelta(seconds=59)
    await world.when(command, SYSTEM)
    assert world.then() == []
    world.now = T0 + timedelta(seconds=60)
    outcome = await world.when(command, SYSTEM)
    assert world.then() == [
        (_token(token_id), TokenSecretRetired(token_id=token_id, account_id=account_id, secret_version=1))
    ]
    assert outcome.state.retiring == {}
    await world.when(command, SYSTEM)
    assert world.then() == []


async def test_retire_token_secret_is_moot_without_a_grace_or_for_a_revoked_token(world: World) -> None:
    account_id, token_id = await _given_token(world)
    await world.when(RotateToken(account_id=account_id, token_id=token_id, grace_period_seconds=60))
    await world.given(TokenRevoked(token_id=token_id, account_id=account_id, reason="revoked"))
    world.now = T0 + HOUR
    for version in (1, 2, 3):
        await world.when(RetireTokenSecret(token_id=token_id, secret_version=version), SYSTEM)
        assert world.then() == []


# -- one event per deadline, whoever decides it ---------------------------------------------------


class _ReadsAsBefore:
    """The world's store, but the token's stream reads as it was: a second scheduler that decided on
    what it read before the first one appended."""

    def __init__(self, world: World, stream: str, history: list[RecordedEvent]) -> None:
        self._store = world.store
        self._stream = stream
        self._history = history

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def read_stream(
        self, stream_id: str, from_version: int = 1, *, until: datetime | None = None
    ) -> list[RecordedEvent]:
        if stream_id == self._stream:
            return self._history
        return await self._store.read_stream(stream_id, from_version, until=until)


async def _expiry(world: World, account_id: str, token_id: str) -> object:
    world.now = T0 + 2 * HOUR
    return ExpireToken(token_id=token_id)


async def _warning(world: World, account_id: str, token_id: str) -> object:
    world.now = T0 + HOUR / 2
    return WarnTokenExpiring(token_id=token_id, leads=(HOUR,))


async def _rotation_due(world: World, account_id: str, token_id: str) -> object:
    world.now = T0 + HOUR / 2
    return FlagTokenRotationDue(token_id=token_id, deployment_period=HOUR / 4)


async def _retirement(world: World, account_id: str, token_id: str) -> object:
    await world.when(RotateToken(account_id=account_id, token_id=token_id, grace_period_seconds=60))
    world.now = T0 + HOUR / 2
    return RetireTokenSecret(token_id=token_id, secret_version=1)


async def _account_expiry(world: World, account_id: str, token_id: str) -> object:
    await world.when(UpdateAccount(account_id=account_id, expires_at=T0 + HOUR))
    world.now = T0 + 2 * HOUR
    return ExpireAccount(account_id=account_id)


async def _account_warning(world: World, account_id: str, token_id: str) -> object:
    await world.when(UpdateAccount(account_id=account_id, expires_at=T0 + HOUR))
    world.now = T0 + HOUR / 2
    return WarnAccountExpiring(account_id=account_id, leads=(HOUR,))


@pytest.mark.parametrize(
    "deadline", [_expiry, _warning, _rotation_due, _retirement, _account_expiry, _account_warning]
)
async def test_two_schedulers_on_one_deadline_append_its_event_once(
    world: World, deadline: Callable[[World, str, str], Awaitable[object]]
) -> None:
    account_id, token_id = await _given_token(world, expires_at=T0 + HOUR)
    command = await deadline(world, account_id, token_id)
    on_account = isinstance(command, ExpireAccount | WarnAccountExpiring)
    stream = f"account-{account_id}" if on_account else _token(token_id)
    read_by_both = await world.store.read_stream(stream)
    first = await world.when(command, SYSTEM)
    (appended,) = world.then_recorded()
    late = msgspec.structs.replace(world.deps, store=_ReadsAsBefore(world, stream, read_by_both))
    second = await Dispatcher(late).dispatch(command, SYSTEM, world.context(SYSTEM))
    assert await world.store.read_stream(stream) == [*read_by_both, appended]
    assert second.cursor == first.cursor
