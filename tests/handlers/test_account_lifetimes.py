"""An account with a lifetime: given an account, when a caller creates or updates it with an
``expires_at``, or the scheduler expires it or warns that its lifetime ends soon, then the events
(or the refusal, which appends nothing). The scheduler's events are appended once per deadline
(two schedulers at once: ``test_scheduled``); an account whose lifetime ended is enabled again only
with a new lifetime in the future, or none."""

from datetime import timedelta

from events.accounts import (
    AccountCreated,
    AccountDisabled,
    AccountEnabled,
    AccountExpired,
    AccountExpiringSoon,
    AccountUpdated,
)
from services.accounts.commands import (
    CreateAccount,
    DeleteAccount,
    ExpireAccount,
    UpdateAccount,
    WarnAccountExpiring,
)
from services.authorization import SYSTEM
from services.commands import Invalid
from tests.handlers.world import T0, World, account_created

HOUR, DAY = timedelta(hours=1), timedelta(days=1)
LEADS = (7 * DAY, DAY)
YEAR = T0 + 365 * DAY


def _account(account_id: str) -> str:
    return f"account-{account_id}"


async def test_create_account_with_a_lifetime_records_it(world: World) -> None:
    outcome = await world.when(CreateAccount(name="temp-bot", description="", expires_at=YEAR))
    account_id = outcome.state.account_id
    assert world.then() == [
        (_account(account_id), AccountCreated(account_id=account_id, name="temp-bot", expires_at=YEAR))
    ]
    assert outcome.state.expires_at == YEAR


async def test_a_lifetime_must_end_in_the_future(world: World) -> None:
    await world.then_raises(
        Invalid, CreateAccount(name="late", description="", expires_at=T0), match="expires_at"
    )
    account = account_created()
    await world.given(account)
    past = UpdateAccount(account_id=account.account_id, expires_at=T0 - HOUR)
    await world.then_raises(Invalid, past, match="expires_at")


async def test_update_sets_keeps_and_clears_the_lifetime(world: World) -> None:
    account = account_created(name="bot", expires_at=YEAR)
    await world.given(account)
    await world.when(UpdateAccount(account_id=account.account_id, description="kept lifetime"))
    ((_, kept),) = world.then()
    assert isinstance(kept, AccountUpdated) and kept.expires_at == YEAR
    await world.when(UpdateAccount(account_id=account.account_id, expires_at=T0 + DAY))
    ((_, moved),) = world.then()
    assert isinstance(moved, AccountUpdated) and moved.expires_at == T0 + DAY
    cleared = await world.when(UpdateAccount(account_id=account.account_id, expires_at=None))
    ((_, none),) = world.then()
    assert isinstance(none, AccountUpdated) and none.expires_at is None and cleared.state.expires_at is None
    await world.when(UpdateAccount(account_id=account.account_id, expires_at=None))
    assert world.then() == []


async def test_expire_account_disables_it_once_its_lifetime_has_passed(world: World) -> None:
    account = account_created(expires_at=T0 + HOUR)
    await world.given(account)
    world.now = T0 + HOUR - timedelta(seconds=1)
    early = await world.when(ExpireAccount(account_id=account.account_id), SYSTEM)
    assert (world.then(), early.cursor) == ([], None)
    world.now = T0 + HOUR
    outcome = await world.when(ExpireAccount(account_id=account.account_id), SYSTEM)
    assert world.then() == [
        (
            _account(account.account_id),
            AccountExpired(account_id=account.account_id, expires_at=T0 + HOUR),
        )
    ]
    assert (outcome.state.enabled, outcome.state.updated_at) == (False, T0 + HOUR)
    await world.when(ExpireAccount(account_id=account.account_id), SYSTEM)
    assert world.then() == []


async def test_expire_account_is_moot_without_a_lifetime_or_once_deleted(world: World) -> None:
    forever, gone = account_created(), account_created(expires_at=T0 + HOUR)
    await world.given(forever, gone)
    await world.when(DeleteAccount(account_id=gone.account_id))
    world.now = T0 + DAY
    for account_id in (forever.account_id, gone.account_id, "nobody"):
        for command in (
            ExpireAccount(account_id=account_id),
            WarnAccountExpiring(account_id=account_id, leads=LEADS),
        ):
            outcome = await world.when(command, SYSTEM)
            assert (world.then(), outcome.cursor) == ([], None)


async def test_an_expired_account_is_enabled_again_only_with_a_new_lifetime_or_none(world: World) -> None:
    account = account_created(expires_at=T0 + HOUR)
    await world.given(account)
    world.now = T0 + 2 * HOUR
    await world.when(ExpireAccount(account_id=account.account_id), SYSTEM)
    account_id = account.account_id
    refused = await world.then_raises(Invalid, UpdateAccount(account_id=account_id, enabled=True))
    assert isinstance(refused, Invalid) and refused.field == "expires_at"
    assert "new expires_at in the future, or null" in refused.reason
    stale = UpdateAccount(account_id=account_id, enabled=True, expires_at=T0 + HOUR)
    await world.then_raises(Invalid, stale, match="expires_at")
    # Renaming it needs no new lifetime; it stays disabled.
    await world.when(UpdateAccount(account_id=account_id, name="renamed"))
    ((_, renamed),) = world.then()
    assert isinstance(renamed, AccountUpdated) and renamed.expires_at == T0 + HOUR
    outcome = await world.when(UpdateAccount(account_id=account_id, enabled=True, expires_at=T0 + DAY))
    assert [event for _, event in world.then()] == [
        AccountUpdated(account_id=account_id, name="renamed", description="", expires_at=T0 + DAY),
        AccountEnabled(account_id=account_id),
    ]
    assert (outcome.state.enabled, outcome.state.expires_at) == (True, T0 + DAY)
    # The new lifetime ends too: expired again, then enabled with none.
    world.now = T0 + DAY
    await world.when(ExpireAccount(account_id=account_id), SYSTEM)
    ((_, again),) = world.then()
    assert again == AccountExpired(account_id=account_id, expires_at=T0 + DAY)
    await world.when(UpdateAccount(account_id=account_id, enabled=True, expires_at=None))
    assert [type(event) for _, event in world.then()] == [AccountUpdated, AccountEnabled]


async def test_a_lapsed_account_not_yet_expired_is_not_enabled_without_a_lifetime(world: World) -> None:
    account = account_created(expires_at=T0 + HOUR)
    await world.given(account)
    await world.when(UpdateAccount(account_id=account.account_id, enabled=False))
    assert [type(event) for _, event in world.then()] == [AccountDisabled]
    world.now = T0 + 2 * HOUR
    await world.then_raises(Invalid, UpdateAccount(account_id=account.account_id, enabled=True))


async def test_warn_account_expiring_records_the_shortest_lead_reached_once(world: World) -> None:
    account = account_created(expires_at=T0 + 10 * DAY)
    await world.given(account)
    command = WarnAccountExpiring(account_id=account.account_id, leads=LEADS)
    world.now = T0 + 2 * DAY
    await world.when(command, SYSTEM)
    assert world.then() == []
    world.now = T0 + 3 * DAY
    await world.when(command, SYSTEM)
    assert world.then() == [
        (
            _account(account.account_id),
            AccountExpiringSoon(
                account_id=account.account_id,
                expires_at=T0 + 10 * DAY,
                lead_seconds=int((7 * DAY).total_seconds()),
            ),
        )
    ]
    await world.when(command, SYSTEM)
    assert world.then() == []
    world.now = T0 + 9 * DAY
    await world.when(command, SYSTEM)
    ((_, last),) = world.then()
    assert isinstance(last, AccountExpiringSoon) and last.lead_seconds == 86400
    # A new lifetime is warned of again.
    await world.when(UpdateAccount(account_id=account.account_id, expires_at=T0 + 9 * DAY + HOUR))
    await world.when(command, SYSTEM)
    ((_, renewed),) = world.then()
    assert isinstance(renewed, AccountExpiringSoon) and renewed.expires_at == T0 + 9 * DAY + HOUR
