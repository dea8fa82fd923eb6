"""The account write model: the state decisions need, folded from the account's own stream, and the
pure decisions (state, command) -> events."""

from collections.abc import Sequence
from datetime import datetime

import msgspec

from events import Event, FrozenMap
from events.accounts import (
    AccountCreated,
    AccountDeleted,
    AccountDisabled,
    AccountEnabled,
    AccountRoleAssigned,
    AccountRoleUnassigned,
    AccountUpdated,
)
from services.commands import Forbidden, Invalid, NotFound
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
    created_at: datetime | None = None
    updated_at: datetime | None = None
    roles: Roles = FrozenMap()

    @property
    def live(self) -> bool:
        return self.exists and not self.deleted


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
                created_at=at,
                updated_at=at,
            )
        case AccountUpdated():
            return msgspec.structs.replace(
                base,
                name=event.name,
                description=event.description,
                rotation_period_seconds=event.rotation_period_seconds,
                updated_at=at,
            )
        case AccountDisabled():
            return msgspec.structs.replace(base, enabled=False, updated_at=at)
        case AccountEnabled():
            return msgspec.structs.replace(base, enabled=True, updated_at=at)
        case AccountDeleted():
            return msgspec.structs.replace(base, deleted=True, roles=FrozenMap())
        case AccountRoleAssigned():
            return msgspec.structs.replace(base, roles=with_assigned(state.roles, event))
        case AccountRoleUnassigned():
            return msgspec.structs.replace(base, roles=without_assigned(state.roles, event.assignment_id))
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


def create(
    account_id: str,
    name: str,
    description: str,
    konnect_managed: bool,
    rotation_period_seconds: int | None = None,
    roles: Sequence[RoleAssignment] = (),
) -> list[Event]:
    """The new account's events: created, then each of ``roles`` assigned (no two the same role)."""
    check_new_name(name)
    check_rotation_period(rotation_period_seconds, clearing_allowed=False)
    for n, grant in enumerate(roles):
        if any(grant.same_grant(earlier) for earlier in roles[:n]):
            raise Invalid(f"assigned_roles[{n}]", "repeats a role given before it")
    created: Event = AccountCreated(
        account_id=account_id,
        name=name,
        description=description,
        konnect_managed=konnect_managed,
        rotation_period_seconds=rotation_period_seconds,
    )
    assigned = [AccountRoleAssigned(account_id=account_id, **msgspec.structs.asdict(g)) for g in roles]
    return [created, *assigned]


def update(
    state: Account,
    name: str | None,
    description: str | None,
    enabled: bool | None,
    rotation_period_seconds: int | None = None,
) -> list[Event]:
    """``None`` leaves a field as it is; ``rotation_period_seconds=0`` clears the account's own
    rotation period (its tokens then follow the deployment's)."""
    require_live(state)
    require_unmanaged(state)
    check_rotation_period(rotation_period_seconds, clearing_allowed=True)
    if name is not None and name != state.name:
        check_new_name(name)
    changes: list[Event] = []
    new_name = state.name if name is None else name
    new_description = state.description if description is None else description
    new_period = state.rotation_period_seconds
    if rotation_period_seconds is not None:
        new_period = rotation_period_seconds or None
    current = (state.name, state.description, state.rotation_period_seconds)
    if (new_name, new_description, new_period) != current:
        changes.append(
            AccountUpdated(
                account_id=state.account_id,
                name=new_name,
                description=new_description,
                rotation_period_seconds=new_period,
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
