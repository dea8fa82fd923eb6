"""The account write model: the state decisions need, folded from the account's own stream, and the
pure decisions (state, command) -> events.

An account may have a lifetime (``expires_at``). Once it has passed, the account's tokens no longer
authenticate (the verifier compares it with the time itself), the scheduler records
``account.expired`` (``expire``), which disables the account, and enabling it again needs a new
lifetime in the future or none, in the same update. Before it, ``warn_expiring_soon`` records
``account.expiring_soon`` as the token model does for tokens; ``deadline_key`` names the deadline
an event answers, so every attempt at one deadline carries the same event id.
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import msgspec

from events import Event, FrozenMap
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
from services import federation
from services.commands import Forbidden, Invalid, NotFound
from services.federation import FederatedCredential
from services.names import check_new_name
from services.repository import Aggregate
from services.roles.assignment import RoleAssignment, Roles, with_assigned, without_assigned


def stream_of(account_id: str) -> str:
    return f"account-{account_id}"


def name_claim(name: str) -> str:
    return f"account-name:{name}"


class Account(msgspec.Struct, frozen=True, kw_only=True):
    account_id: str
    version: int = 0
    exists: bool = False
    deleted: bool = False
    name: str = ""
    description: str = ""
    konnect_managed: bool = False
    enabled: bool = True
    rotation_period_seconds: int | None = None
    expires_at: datetime | None = None
    expired_at: datetime | None = None
    """The ``expires_at`` the latest ``account.expired`` answered."""
    warned_lead_seconds: int | None = None
    """The shortest lead of the ``account.expiring_soon`` recorded for the current ``expires_at``."""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    roles: Roles = FrozenMap()
    federated_credentials: FrozenMap[str, FederatedCredential] = FrozenMap()

    @property
    def live(self) -> bool:
        return self.exists and not self.deleted

    def lapsed(self, now: datetime) -> bool:
        """The account's lifetime has ended at ``now`` (recorded as ``account.expired`` or not yet)."""
        return self.expires_at is not None and self.expires_at <= now


def evolve(state: Account, event: Event, version: int, at: datetime) -> Account:
    """The state after ``event``, the stream's ``version``-th, which occurred ``at``."""
    base = msgspec.structs.replace(state, version=version)
    match event:
        case AccountCreated():
            return msgspec.structs.replace(
                base,
                exists=True,
                name=event.name,
                description=event.description,
                konnect_managed=event.konnect_managed,
                rotation_period_seconds=event.rotation_period_seconds,
                expires_at=event.expires_at,
                created_at=at,
                updated_at=at,
            )
        case AccountUpdated():
            moved = event.expires_at != state.expires_at
            return msgspec.structs.replace(
                base,
                name=event.name,
                description=event.description,
                rotation_period_seconds=event.rotation_period_seconds,
                expires_at=event.expires_at,
                warned_lead_seconds=None if moved else state.warned_lead_seconds,
                updated_at=at,
            )
        case AccountExpired():
            return msgspec.structs.replace(base, enabled=False, expired_at=event.expires_at, updated_at=at)
        case AccountExpiringSoon():
            if event.expires_at == state.expires_at:
                warned = state.warned_lead_seconds
                lead = event.lead_seconds if warned is None else min(warned, event.lead_seconds)
                return msgspec.structs.replace(base, warned_lead_seconds=lead)
        case AccountDisabled():
            return msgspec.structs.replace(base, enabled=False, updated_at=at)
        case AccountEnabled():
            return msgspec.structs.replace(base, enabled=True, updated_at=at)
        case AccountDeleted():
            return msgspec.structs.replace(
                base, deleted=True, roles=FrozenMap(), federated_credentials=FrozenMap()
            )
        case AccountRoleAssigned():
            return msgspec.structs.replace(base, roles=with_assigned(state.roles, event))
        case AccountRoleUnassigned():
            return msgspec.structs.replace(base, roles=without_assigned(state.roles, event.assignment_id))
    credentials = federation.evolve(state.federated_credentials, event, at)
    if credentials is not None:
        return msgspec.structs.replace(base, federated_credentials=FrozenMap(credentials), updated_at=at)
    return base


ACCOUNTS = Aggregate[Account](
    stream_of=stream_of,
    empty=lambda account_id: Account(account_id=account_id),
    evolve=evolve,
    id_of=lambda account: account.account_id,
    live=lambda account: account.live,
    duplicate="a system account with this name already exists",
)
fold = ACCOUNTS.fold


def require_live(state: Account) -> Account:
    if not state.live:
        raise NotFound("system account not found")
    return state


def require_unmanaged(state: Account) -> None:
    if state.konnect_managed:
        raise Forbidden("konnect-managed system accounts cannot be changed through the API")


def check_rotation_period(seconds: int | None, *, clearing_allowed: bool) -> None:
    """A rotation period is a positive number of seconds; on update, 0 clears it."""
    if seconds is None or seconds > 0 or (seconds == 0 and clearing_allowed):
        return
    lowest = "0 (clears it)" if clearing_allowed else "1"
    raise Invalid("rotation_period_seconds", f"must be at least {lowest}")


def check_lifetime(expires_at: datetime | None, now: datetime) -> None:
    """A lifetime an account is given ends in the future."""
    if expires_at is not None and expires_at <= now:
        raise Invalid("expires_at", "must be in the future")


def create(
    account_id: str,
    name: str,
    description: str,
    konnect_managed: bool,
    rotation_period_seconds: int | None = None,
    roles: Sequence[RoleAssignment] = (),
    *,
    expires_at: datetime | None = None,
    now: datetime,
) -> list[Event]:
    """The new account's events: created, then each of ``roles`` assigned (no two the same role)."""
    check_new_name(name)
    check_rotation_period(rotation_period_seconds, clearing_allowed=False)
    check_lifetime(expires_at, now)
    for n, grant in enumerate(roles):
        if any(grant.same_grant(earlier) for earlier in roles[:n]):
            raise Invalid(f"assigned_roles[{n}]", "repeats a role given before it")
    created: Event = AccountCreated(
        account_id=account_id,
        name=name,
        description=description,
        konnect_managed=konnect_managed,
        rotation_period_seconds=rotation_period_seconds,
        expires_at=expires_at,
    )
    assigned = [AccountRoleAssigned(account_id=account_id, **msgspec.structs.asdict(g)) for g in roles]
    return [created, *assigned]


def update(
    state: Account,
    name: str | None,
    description: str | None,
    enabled: bool | None,
    rotation_period_seconds: int | None = None,
    *,
    expires_at: datetime | msgspec.UnsetType | None = msgspec.UNSET,
    now: datetime,
) -> list[Event]:
    """``None`` leaves a field as it is; ``rotation_period_seconds=0`` clears the account's own
    rotation period (its tokens then follow the deployment's). ``expires_at`` left unset keeps the
    account's lifetime, None clears it, an instant (after ``now``) sets it. An account whose
    lifetime has ended is enabled only with a new lifetime in the future, or none."""
    require_live(state)
    require_unmanaged(state)
    check_rotation_period(rotation_period_seconds, clearing_allowed=True)
    if name is not None and name != state.name:
        check_new_name(name)
    new_expiry = state.expires_at
    if not isinstance(expires_at, msgspec.UnsetType):
        check_lifetime(expires_at, now)
        new_expiry = expires_at
    if enabled and new_expiry is not None and new_expiry <= now:
        raise Invalid(
            "expires_at",
            f"the system account's lifetime ended at {_instant(new_expiry)}: enable it with a new"
            " expires_at in the future, or null for none",
            "dependent_fields",
        )
    changes: list[Event] = []
    new_name = state.name if name is None else name
    new_description = state.description if description is None else description
    new_period = state.rotation_period_seconds
    if rotation_period_seconds is not None:
        new_period = rotation_period_seconds or None
    current = (state.name, state.description, state.rotation_period_seconds, state.expires_at)
    if (new_name, new_description, new_period, new_expiry) != current:
        changes.append(
            AccountUpdated(
                account_id=state.account_id,
                name=new_name,
                description=new_description,
                rotation_period_seconds=new_period,
                expires_at=new_expiry,
            )
        )
    if enabled is not None and enabled != state.enabled:
        changes.append(
            AccountEnabled(account_id=state.account_id)
            if enabled
            else AccountDisabled(account_id=state.account_id)
        )
    return changes


def delete(state: Account) -> list[Event]:
    require_live(state)
    require_unmanaged(state)
    return [AccountDeleted(account_id=state.account_id)]


# -- time-driven decisions (the scheduler's) ----------------------------------------------------


def expire(state: Account, now: datetime) -> list[Event]:
    """``account.expired`` once a live account's lifetime has passed, once per ``expires_at`` (also
    for an account disabled meanwhile: the lifetime ended all the same)."""
    if not state.live or not state.lapsed(now) or state.expired_at == state.expires_at:
        return []
    assert state.expires_at is not None
    return [AccountExpired(account_id=state.account_id, expires_at=state.expires_at)]


def warn_expiring_soon(state: Account, now: datetime, leads: Sequence[timedelta]) -> list[Event]:
    """``account.expiring_soon`` for the shortest of ``leads`` already reached, unless a warning
    with that lead or a shorter one was recorded for the current ``expires_at``."""
    if not state.live or state.expires_at is None or state.expires_at <= now:
        return []
    reached = [lead for lead in leads if state.expires_at - lead <= now]
    if not reached:
        return []
    lead_seconds = int(min(reached).total_seconds())
    if state.warned_lead_seconds is not None and state.warned_lead_seconds <= lead_seconds:
        return []
    return [
        AccountExpiringSoon(
            account_id=state.account_id, expires_at=state.expires_at, lead_seconds=lead_seconds
        )
    ]


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def deadline_key(event: Event) -> str:
    """The deadline a time-driven ``event`` answers: the kind and the instant (per account, through
    its stream); the idempotency key of the scheduler's append, so its event id is deterministic."""
    match event:
        case AccountExpired():
            return f"{event.tag()}@{_instant(event.expires_at)}"
        case AccountExpiringSoon():
            return f"{event.tag()}@{_instant(event.expires_at)}-{event.lead_seconds}s"
    raise ValueError(f"{event.tag()} is not a time-driven event")
