"""Pure parts of the scheduler: the token model's time-driven decisions, the deadline keys that make
their event ids deterministic, the due-index reducer, and the scheduler's settings."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events import Event, Metadata, RecordedEvent
from events.accounts import (
    AccountCreated,
    AccountDeleted,
    AccountExpired,
    AccountExpiringSoon,
    AccountUpdated,
)
from events.tokens import (
    TokenExpired,
    TokenExpiringSoon,
    TokenExtended,
    TokenIssued,
    TokenRevoked,
    TokenRotated,
    TokenRotationDue,
    TokenSecretRetired,
)
from projections.deadlines import EXPIRY, RETIREMENT, ROTATION, UNWARNED, DeadlinesProjection
from services.accounts import model as accounts
from services.commands import CommandContext, Invalid
from services.config import ConfigError, load_settings
from services.tokens import model
from services.tokens.model import Token

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
TOKEN = str(uuid.UUID(int=1))
ACCOUNT = str(uuid.UUID(int=2))
DAY = timedelta(days=1)
LEADS = (7 * DAY, DAY)


def token(*events: Event, at: datetime = T0) -> Token:
    state = Token(token_id=TOKEN)
    for version, event in enumerate(events, start=1):
        state = model.evolve(state, event, version, at)
    return state


def issued(expires_at: datetime | None = T0 + 30 * DAY) -> TokenIssued:
    return TokenIssued(token_id=TOKEN, account_id=ACCOUNT, name="ci", secret_hash="h", expires_at=expires_at)


def rotated(version: int = 2, grace: datetime | None = None) -> TokenRotated:
    return TokenRotated(
        token_id=TOKEN,
        account_id=ACCOUNT,
        secret_hash="h2",
        secret_version=version,
        previous_valid_until=grace,
    )


def test_expiry_is_decided_by_the_current_expires_at() -> None:
    state = token(issued(T0 + DAY))
    assert model.expire(state, T0 + DAY - timedelta(microseconds=1)) == []
    (expired,) = model.expire(state, T0 + DAY)
    assert expired == TokenExpired(token_id=TOKEN, account_id=ACCOUNT, expires_at=T0 + DAY)
    extended = model.evolve(
        state, TokenExtended(token_id=TOKEN, account_id=ACCOUNT, expires_at=T0 + 3 * DAY), 2, T0
    )
    assert model.expire(extended, T0 + 2 * DAY) == [], "the extension made the old deadline moot"
    revoked = model.evolve(state, TokenRevoked(token_id=TOKEN, account_id=ACCOUNT, reason="r"), 2, T0)
    assert model.expire(revoked, T0 + 2 * DAY) == []
    assert model.expire(model.evolve(state, expired, 2, T0), T0 + 2 * DAY) == [], "once"
    assert model.expire(token(issued(None)), T0 + 1000 * DAY) == []


def test_warnings_take_the_shortest_lead_reached_once_per_expiry() -> None:
    state = token(issued(T0 + 10 * DAY))
    assert model.warn_expiring_soon(state, T0 + 2 * DAY, LEADS) == []
    (week,) = model.warn_expiring_soon(state, T0 + 3 * DAY, LEADS)
    assert isinstance(week, TokenExpiringSoon) and week.lead_seconds == 7 * 86400
    warned = model.evolve(state, week, 2, T0)
    assert model.warn_expiring_soon(warned, T0 + 5 * DAY, LEADS) == []
    (day,) = model.warn_expiring_soon(warned, T0 + 9 * DAY, LEADS)
    assert isinstance(day, TokenExpiringSoon) and day.lead_seconds == 86400
    assert model.warn_expiring_soon(model.evolve(warned, day, 3, T0), T0 + 9 * DAY, LEADS) == []
    assert model.warn_expiring_soon(state, T0 + 10 * DAY, LEADS) == [], "past expiry: expire instead"
    moved = model.evolve(
        warned, TokenExtended(token_id=TOKEN, account_id=ACCOUNT, expires_at=T0 + 20 * DAY), 3, T0
    )
    (again,) = model.warn_expiring_soon(moved, T0 + 13 * DAY, LEADS)
    assert isinstance(again, TokenExpiringSoon) and again.expires_at == T0 + 20 * DAY


def test_rotation_is_due_once_per_secret_after_the_period() -> None:
    state = token(issued(None))
    period = 90 * DAY
    assert model.flag_rotation_due(state, T0 + 89 * DAY, period) == []
    assert model.flag_rotation_due(state, T0 + 1000 * DAY, None) == []
    (due,) = model.flag_rotation_due(state, T0 + 91 * DAY, period)
    assert due == TokenRotationDue(token_id=TOKEN, account_id=ACCOUNT, due_at=T0 + period)
    flagged = model.evolve(state, due, 2, T0)
    assert model.flag_rotation_due(flagged, T0 + 200 * DAY, period) == []
    renewed = model.evolve(flagged, rotated(), 3, T0 + 100 * DAY)
    (next_due,) = model.flag_rotation_due(renewed, T0 + 191 * DAY, period)
    assert isinstance(next_due, TokenRotationDue) and next_due.due_at == T0 + 190 * DAY
    expired_by_time = token(issued(T0 + 10 * DAY))
    assert model.flag_rotation_due(expired_by_time, T0 + 91 * DAY, period) == []


def test_a_previous_secret_is_retired_at_the_end_of_its_grace_period() -> None:
    state = token(issued(None), rotated(2, T0 + DAY))
    assert model.retire_secret(state, T0 + DAY - timedelta(seconds=1), 1) == []
    (first,) = model.retire_secret(state, T0 + DAY, 1)
    assert first == TokenSecretRetired(token_id=TOKEN, account_id=ACCOUNT, secret_version=1)
    after = model.evolve(state, first, 3, T0)
    assert model.retire_secret(after, T0 + 3 * DAY, 1) == []
    without_grace = token(issued(None), rotated(2, None))
    assert model.retire_secret(without_grace, T0 + DAY, 1) == []


def test_a_rotation_ends_every_earlier_grace_but_the_one_it_gives() -> None:
    """Only the current secret and the one the latest rotation replaced can be valid."""
    state = token(issued(None), rotated(2, T0 + DAY), rotated(3, T0 + 2 * DAY))
    assert state.retiring == {2: T0 + 2 * DAY}
    assert model.retire_secret(state, T0 + DAY, 1) == []  # ended by the rotation to 3 already
    assert len(model.retire_secret(state, T0 + 3 * DAY, 2)) == 1
    emergency = model.evolve(state, rotated(4, None), 4, T0)
    assert emergency.retiring == {}
    assert [v for v in range(1, 5) if model.secret_works(emergency, v, T0)] == [4]


def test_deadline_keys_name_token_kind_and_instant_so_event_ids_repeat() -> None:
    state = token(issued(T0 + DAY), rotated(2, T0 + DAY))
    expired = model.expire(state, T0 + 2 * DAY)[0]
    retired = model.retire_secret(state, T0 + 2 * DAY, 1)[0]
    assert model.deadline_key(state, expired) == f"token.expired@{(T0 + DAY).isoformat()}"
    assert model.deadline_key(state, retired).startswith("token.secret_retired@")
    ctx = CommandContext(now=T0, actor="system:scheduler", idempotency_key=model.deadline_key(state, expired))
    other_attempt = CommandContext(
        now=T0 + DAY, actor="system:scheduler", idempotency_key=ctx.idempotency_key
    )
    stream = model.stream_of(TOKEN)
    first = ctx.new_events(stream, [expired])[0].event_id
    assert first == other_attempt.new_events(stream, [expired])[0].event_id
    with pytest.raises(ValueError, match="not a time-driven event"):
        model.deadline_key(state, issued())


def test_account_rotation_periods_are_set_kept_and_cleared() -> None:
    assert accounts.create("a", "bot", "", False, 3600, now=T0)[0] == AccountCreated(
        account_id="a", name="bot", rotation_period_seconds=3600
    )
    with pytest.raises(Invalid):
        accounts.create("a", "bot", "", False, 0, now=T0)
    state = accounts.evolve(
        accounts.Account(account_id="a"), accounts.create("a", "bot", "", False, 3600, now=T0)[0], 1, T0
    )
    assert accounts.update(state, "bot", None, None, now=T0) == []
    (renamed,) = accounts.update(state, "robot", None, None, now=T0)
    assert isinstance(renamed, AccountUpdated) and renamed.rotation_period_seconds == 3600
    (cleared,) = accounts.update(state, None, None, None, rotation_period_seconds=0, now=T0)
    assert isinstance(cleared, AccountUpdated) and cleared.rotation_period_seconds is None
    with pytest.raises(Invalid):
        accounts.update(state, None, None, None, rotation_period_seconds=-1, now=T0)


# -- the due-index reducer ---------------------------------------------------------------------

_position = 0


def recorded(event: Event, at: datetime = T0) -> RecordedEvent:
    global _position
    _position += 1
    return RecordedEvent(
        global_position=_position,
        tx_id=_position,
        stream_id="s",
        stream_version=1,
        event_id=uuid.uuid4(),
        event=event,
        metadata=Metadata(occurred_at=at),
        recorded_at=at,
    )


def rows(*events: RecordedEvent) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    fold = DeadlinesProjection().fold()
    for event in events:
        fold.apply(event)
    tables = fold.tables()
    return sorted(tables["token_deadlines"].rows), sorted(tables["rotation_periods"].rows)


def test_the_due_index_holds_one_row_per_pending_deadline() -> None:
    deadlines, _ = rows(
        recorded(AccountCreated(account_id=ACCOUNT, name="bot", rotation_period_seconds=3600)),
        recorded(issued(T0 + DAY)),
        recorded(rotated(2, T0 + 2 * DAY), at=T0 + DAY),
    )
    assert deadlines == [
        (TOKEN, EXPIRY, 0, ACCOUNT, T0 + DAY, None, UNWARNED),
        (TOKEN, RETIREMENT, 1, ACCOUNT, T0 + 2 * DAY, None, UNWARNED),
        (TOKEN, ROTATION, 0, ACCOUNT, T0 + DAY + timedelta(hours=1), T0 + DAY, UNWARNED),
    ]


def test_emitted_and_moot_deadlines_leave_the_due_index() -> None:
    start = [recorded(issued(T0 + 10 * DAY)), recorded(rotated(2, T0 + DAY))]
    warning = TokenExpiringSoon(
        token_id=TOKEN, account_id=ACCOUNT, expires_at=T0 + 10 * DAY, lead_seconds=604800
    )
    deadlines, _ = rows(
        *start,
        recorded(warning),
        recorded(TokenRotationDue(token_id=TOKEN, account_id=ACCOUNT, due_at=T0)),
        recorded(TokenSecretRetired(token_id=TOKEN, account_id=ACCOUNT, secret_version=1)),
    )
    assert deadlines == [(TOKEN, EXPIRY, 0, ACCOUNT, T0 + 10 * DAY, None, 604800)]
    extension = TokenExtended(token_id=TOKEN, account_id=ACCOUNT, expires_at=T0 + 20 * DAY)
    deadlines, _ = rows(*start, recorded(warning), recorded(extension))
    assert (TOKEN, EXPIRY, 0, ACCOUNT, T0 + 20 * DAY, None, UNWARNED) in deadlines
    for ending in (
        TokenRevoked(token_id=TOKEN, account_id=ACCOUNT, reason="r"),
        TokenExpired(token_id=TOKEN, account_id=ACCOUNT, expires_at=T0 + 10 * DAY),
    ):
        assert rows(*start, recorded(ending))[0] == []


def test_an_account_period_change_reschedules_its_tokens_rotation() -> None:
    created = recorded(AccountCreated(account_id=ACCOUNT, name="bot"))
    token_issued = recorded(issued(None))
    deadlines, periods = rows(
        created,
        token_issued,
        recorded(AccountUpdated(account_id=ACCOUNT, name="bot", description="", rotation_period_seconds=60)),
    )
    assert deadlines == [(TOKEN, ROTATION, 0, ACCOUNT, T0 + timedelta(minutes=1), T0, UNWARNED)]
    assert periods == [(ACCOUNT, 60)]
    cleared = recorded(AccountUpdated(account_id=ACCOUNT, name="bot", description=""))
    deadlines, periods = rows(created, token_issued, cleared)
    assert deadlines == [(TOKEN, ROTATION, 0, ACCOUNT, None, T0, UNWARNED)]
    assert periods == []


def lifetimes(*events: RecordedEvent) -> list[tuple[Any, ...]]:
    fold = DeadlinesProjection().fold()
    for event in events:
        fold.apply(event)
    return sorted(fold.tables()["account_deadlines"].rows)


def test_an_account_lifetime_is_due_once_and_again_only_when_it_changes() -> None:
    lifetime = T0 + 10 * DAY
    created = recorded(AccountCreated(account_id=ACCOUNT, name="bot", expires_at=lifetime))
    assert lifetimes(created) == [(ACCOUNT, lifetime, lifetime, UNWARNED)]
    warned = recorded(AccountExpiringSoon(account_id=ACCOUNT, expires_at=lifetime, lead_seconds=86400))
    expired = recorded(AccountExpired(account_id=ACCOUNT, expires_at=lifetime))
    assert lifetimes(created, warned) == [(ACCOUNT, lifetime, lifetime, 86400)]
    assert lifetimes(created, warned, expired) == [(ACCOUNT, lifetime, None, 86400)]
    # A rename keeps the lifetime: not due again. A new lifetime is, unwarned.
    renamed = recorded(AccountUpdated(account_id=ACCOUNT, name="robot", description="", expires_at=lifetime))
    assert lifetimes(created, warned, expired, renamed) == [(ACCOUNT, lifetime, None, 86400)]
    renewed = recorded(
        AccountUpdated(account_id=ACCOUNT, name="robot", description="", expires_at=T0 + 20 * DAY)
    )
    assert lifetimes(created, expired, renewed) == [(ACCOUNT, T0 + 20 * DAY, T0 + 20 * DAY, UNWARNED)]
    cleared = recorded(AccountUpdated(account_id=ACCOUNT, name="robot", description=""))
    assert lifetimes(created, cleared) == []
    assert lifetimes(created, recorded(AccountDeleted(account_id=ACCOUNT))) == []
    # A warning or an expiry of a lifetime since replaced changes nothing.
    stale = recorded(AccountExpired(account_id=ACCOUNT, expires_at=lifetime))
    assert lifetimes(created, renewed, stale) == [(ACCOUNT, T0 + 20 * DAY, T0 + 20 * DAY, UNWARNED)]


def test_an_account_lifetime_is_expired_and_warned_of_by_the_account_model() -> None:
    state = accounts.evolve(
        accounts.Account(account_id=ACCOUNT),
        AccountCreated(account_id=ACCOUNT, name="bot", expires_at=T0 + 10 * DAY),
        1,
        T0,
    )
    (warning,) = accounts.warn_expiring_soon(state, T0 + 9 * DAY, LEADS)
    assert warning == AccountExpiringSoon(account_id=ACCOUNT, expires_at=T0 + 10 * DAY, lead_seconds=86400)
    assert accounts.warn_expiring_soon(state, T0 + 2 * DAY, LEADS) == []
    assert accounts.expire(state, T0 + 10 * DAY - timedelta(microseconds=1)) == []
    (expired,) = accounts.expire(state, T0 + 10 * DAY)
    assert accounts.deadline_key(expired) == "account.expired@2025-06-11T12:00:00Z"
    assert accounts.deadline_key(warning) == "account.expiring_soon@2025-06-11T12:00:00Z-86400s"
    gone = accounts.evolve(state, expired, 2, T0 + 10 * DAY)
    assert (gone.enabled, accounts.expire(gone, T0 + 11 * DAY)) == (False, [])
    with pytest.raises(ValueError, match="not a time-driven event"):
        accounts.deadline_key(AccountDeleted(account_id=ACCOUNT))


def test_the_reducer_statements_cover_the_same_events() -> None:
    projection = DeadlinesProjection()
    statements = projection.apply(recorded(issued(T0 + DAY)))
    assert [s.sql.split()[0] for s in statements] == ["INSERT", "INSERT"]
    assert projection.apply(recorded(TokenRevoked(token_id=TOKEN, account_id=ACCOUNT, reason="r")))[
        0
    ].args == (TOKEN,)
    assert projection.apply(recorded(AccountCreated(account_id=ACCOUNT, name="bot"))) == ()


# -- settings ----------------------------------------------------------------------------------


def test_lead_times_and_rotation_period_come_from_the_environment() -> None:
    defaults = load_settings({})
    assert defaults.expiry_warning_leads == LEADS and defaults.rotation_period is None
    custom = load_settings(
        {"TOKENLEDGER_EXPIRY_WARNING_LEADS": "1d, 12h,7d,30m", "TOKENLEDGER_ROTATION_PERIOD_DAYS": "90"}
    )
    assert custom.expiry_warning_leads == (7 * DAY, DAY, timedelta(hours=12), timedelta(minutes=30))
    assert custom.rotation_period == 90 * DAY
    assert load_settings({"TOKENLEDGER_EXPIRY_WARNING_LEADS": ""}).expiry_warning_leads == ()
    for bad in ("7", "0d", "1w", "-1d"):
        with pytest.raises(ConfigError):
            load_settings({"TOKENLEDGER_EXPIRY_WARNING_LEADS": bad})
