"""Roles held by system accounts and by teams (the role holders): one decision, one pair of handlers.

``AssignRole`` and ``UnassignRole`` name their holder (``AccountHolder`` or ``TeamHolder``); each
holder kind says how its stream is folded and which events record a change (``account.role_*`` and
``team.role_*`` keep their tags and JSON). The decision is the same for both: the role must be in
the catalogue (a 400 before anything else), the caller must be able to grant it (the cover rule,
``services.authorization``), the holder must be live and must not hold it already; a konnect-managed
account's roles change only by tokenledger itself (bootstrap). Under an idempotency key a retry
answers with the assignment it made (``commands.recorded``), never deciding again.

This module knows both aggregates' models, as ``services.directory`` does, so that the aggregates
themselves stay independent.
"""

from collections.abc import Callable, Mapping
from typing import Any, Generic, Protocol, TypeVar

import msgspec

from events import Event
from events.accounts import AccountRoleAssigned, AccountRoleUnassigned
from events.teams import TeamRoleAssigned, TeamRoleUnassigned
from services import repository
from services.accounts import model as accounts
from services.authorization import Actor, SystemActor, check_can_grant
from services.commands import CommandContext, NotFound, Outcome, Recorded, with_retries
from services.dependencies import Dependencies
from services.repository import Aggregate
from services.roles.assignment import RoleAssignment, check_in_catalogue, check_new_assignment
from services.teams import model as teams


class AccountHolder(msgspec.Struct, frozen=True, tag="account"):
    account_id: str


class TeamHolder(msgspec.Struct, frozen=True, tag="team"):
    team_id: str


Holder = AccountHolder | TeamHolder


class AssignRole(msgspec.Struct, frozen=True, kw_only=True, tag="role.assign"):
    holder: Holder
    role_name: str
    entity_id: str
    entity_type_name: str
    entity_region: str


class UnassignRole(msgspec.Struct, frozen=True, kw_only=True, tag="role.unassign"):
    holder: Holder
    assignment_id: str


class _HolderState(Protocol):
    @property
    def version(self) -> int: ...
    @property
    def roles(self) -> Mapping[str, RoleAssignment]: ...


S = TypeVar("S", bound=_HolderState)


class HolderKind(msgspec.Struct, Generic[S], frozen=True, kw_only=True):
    """How one kind of holder is folded, and the events that record a change of its roles."""

    holder_id: Callable[[Any], str]
    aggregate: Aggregate[S]
    not_found: str
    assigned: Callable[[str, RoleAssignment], Event]
    unassigned: Callable[[str, str], Event]
    require_changeable: Callable[[S], None]
    """Refuses a holder whose roles only tokenledger itself may change."""


def _account_assigned(account_id: str, grant: RoleAssignment) -> Event:
    return AccountRoleAssigned(account_id=account_id, **msgspec.structs.asdict(grant))


def _team_assigned(team_id: str, grant: RoleAssignment) -> Event:
    return TeamRoleAssigned(team_id=team_id, **msgspec.structs.asdict(grant))


KINDS: Mapping[type, HolderKind[Any]] = {
    AccountHolder: HolderKind[accounts.Account](
        holder_id=lambda holder: holder.account_id,
        aggregate=accounts.ACCOUNTS,
        not_found="system account not found",
        assigned=_account_assigned,
        unassigned=lambda account_id, assignment: AccountRoleUnassigned(
            account_id=account_id, assignment_id=assignment
        ),
        require_changeable=accounts.require_unmanaged,
    ),
    TeamHolder: HolderKind[teams.Team](
        holder_id=lambda holder: holder.team_id,
        aggregate=teams.TEAMS,
        not_found="team not found",
        assigned=_team_assigned,
        unassigned=lambda team_id, assignment: TeamRoleUnassigned(team_id=team_id, assignment_id=assignment),
        require_changeable=lambda team: None,
    ),
}


class _Loaded(msgspec.Struct, Generic[S], frozen=True):
    kind: HolderKind[S]
    holder_id: str
    state: S
    retried: Recorded[S] | None


async def _load(
    deps: Dependencies, ctx: CommandContext, holder: Holder, actor: Actor | SystemActor
) -> _Loaded[Any]:
    kind = KINDS[type(holder)]
    holder_id = kind.holder_id(holder)
    state, retry = await repository.load(deps.store, kind.aggregate, ctx, holder_id)
    if retry is not None:
        return _Loaded(kind, holder_id, state, retry)
    if not kind.aggregate.live(state):
        raise NotFound(kind.not_found)
    if not isinstance(actor, SystemActor):
        kind.require_changeable(state)
    return _Loaded(kind, holder_id, state, None)


async def _append(
    deps: Dependencies, ctx: CommandContext, loaded: _Loaded[Any], event: Event
) -> Outcome[Any]:
    return await repository.append(deps.store, loaded.kind.aggregate, ctx, loaded.state, [event])


async def assign_role(
    deps: Dependencies, ctx: CommandContext, actor: Actor | SystemActor, command: AssignRole
) -> Outcome[RoleAssignment]:
    """The outcome's state is the assignment made (on a retry, the one the first attempt made)."""
    grant = RoleAssignment(
        assignment_id=ctx.new_id("assignment"),
        role_name=command.role_name,
        entity_id=command.entity_id,
        entity_type_name=command.entity_type_name,
        entity_region=command.entity_region,
    )
    check_in_catalogue(deps.catalogue, grant)
    check_can_grant(actor, deps.organization_id, [grant])

    async def attempt() -> Outcome[RoleAssignment]:
        loaded = await _load(deps, ctx, command.holder, actor)
        if loaded.retried is not None:
            original = loaded.retried.original(holds=grant.assignment_id in loaded.state.roles)
            return Outcome(original.state.roles[grant.assignment_id], original.cursor)
        check_new_assignment(deps.catalogue, dict(loaded.state.roles), grant)
        appended = await _append(deps, ctx, loaded, loaded.kind.assigned(loaded.holder_id, grant))
        return Outcome(grant, appended.cursor)

    return await with_retries(attempt)


async def unassign_role(
    deps: Dependencies, ctx: CommandContext, actor: Actor | SystemActor, command: UnassignRole
) -> Outcome[Any]:
    async def attempt() -> Outcome[Any]:
        loaded = await _load(deps, ctx, command.holder, actor)
        if loaded.retried is not None:
            return loaded.retried.original()
        if command.assignment_id not in loaded.state.roles:
            raise NotFound("assigned role not found")
        event = loaded.kind.unassigned(loaded.holder_id, command.assignment_id)
        return await _append(deps, ctx, loaded, event)

    return await with_retries(attempt)
