"""Roles held by accounts and by teams: assign and unassign, for both kinds of holder, given events,
when the command, then the event it appended or the refusal, which appends nothing. The role must be
in the catalogue (checked first), the caller must be able to grant it (the cover rule), the holder
must be live and not hold it yet; only tokenledger changes a konnect-managed account's roles."""

from typing import Any

import pytest

from events import Event
from events.accounts import AccountCreated, AccountDeleted, AccountRoleAssigned, AccountRoleUnassigned
from events.teams import TeamCreated, TeamDeleted, TeamRoleAssigned, TeamRoleUnassigned
from services.authorization import SYSTEM, MissingRight
from services.commands import Conflict, Forbidden, Invalid, NotFound, Superseded
from services.role_holders import AccountHolder, AssignRole, Holder, TeamHolder, UnassignRole
from services.roles.assignment import RoleAssignment
from tests.handlers.world import (
    ORG,
    World,
    account_created,
    caller,
    grant,
    role_assigned,
    team_created,
)

HOLDERS = ["account", "team"]


def _holder_of(created: AccountCreated | TeamCreated) -> Holder:
    if isinstance(created, AccountCreated):
        return AccountHolder(account_id=created.account_id)
    return TeamHolder(team_id=created.team_id)


def _new_holder(kind: str, **fields: Any) -> AccountCreated | TeamCreated:
    return account_created(**fields) if kind == "account" else team_created(**fields)


def _stream(created: AccountCreated | TeamCreated) -> str:
    if isinstance(created, AccountCreated):
        return f"account-{created.account_id}"
    return f"team-{created.team_id}"


def _deleted(created: AccountCreated | TeamCreated) -> Event:
    if isinstance(created, AccountCreated):
        return AccountDeleted(account_id=created.account_id)
    return TeamDeleted(team_id=created.team_id)


def _assign(holder: Holder, role_name: str = "Viewer", **fields: str) -> AssignRole:
    values = {"entity_id": ORG, "entity_type_name": "Identity", "entity_region": "*", **fields}
    return AssignRole(holder=holder, role_name=role_name, **values)


# -- AssignRole ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", HOLDERS)
async def test_assign_role_records_the_assignment(world: World, kind: str) -> None:
    created = _new_holder(kind)
    await world.given(created)
    outcome = await world.when(_assign(_holder_of(created)), caller("Admin", "Viewer"))
    assignment = outcome.state
    assert assignment == RoleAssignment(
        assignment_id=assignment.assignment_id,
        role_name="Viewer",
        entity_id=ORG,
        entity_type_name="Identity",
        entity_region="*",
    )
    values = {
        "assignment_id": assignment.assignment_id,
        "role_name": "Viewer",
        "entity_id": ORG,
        "entity_type_name": "Identity",
        "entity_region": "*",
    }
    expected: Event
    if isinstance(created, AccountCreated):
        expected = AccountRoleAssigned(account_id=created.account_id, **values)
    else:
        expected = TeamRoleAssigned(team_id=created.team_id, **values)
    assert world.then() == [(_stream(created), expected)]
    assert outcome.cursor == world.then_recorded()[-1].cursor


@pytest.mark.parametrize("kind", HOLDERS)
async def test_assign_role_refuses_what_is_not_in_the_catalogue_before_rights(
    world: World, kind: str
) -> None:
    """An unknown role is bad input, answered as such even to a caller who could grant nothing."""
    created = _new_holder(kind)
    await world.given(created)
    holder = _holder_of(created)
    writer = caller("Admin", scopes=["identity:write"])
    await world.then_raises(Invalid, _assign(holder, entity_region="mars"), writer, match="entity_region")
    await world.then_raises(
        Invalid, _assign(holder, entity_type_name="Planets"), writer, match="entity_type_name"
    )
    await world.then_raises(Invalid, _assign(holder, "Emperor"), writer, match="role_name")
    await world.then_raises(
        Invalid, _assign(holder, "Viewer", entity_id="another-org"), caller("Admin", "Viewer")
    )


@pytest.mark.parametrize("kind", HOLDERS)
async def test_assign_role_needs_covering_the_role(world: World, kind: str) -> None:
    created = _new_holder(kind)
    await world.given(created)
    holder = _holder_of(created)
    await world.then_raises(Forbidden, _assign(holder, "Auditor"), match="the Identity role Auditor")
    scoped = caller("Admin", "Auditor", scopes=["identity:write"])
    await world.then_raises(Forbidden, _assign(holder, "Auditor"), scoped, match="audit:read")
    control_plane = {"entity_type_name": "Control Planes", "entity_id": "cp-1", "entity_region": "eu"}
    await world.then_raises(Forbidden, _assign(holder, "Admin", **control_plane), match="Control Planes cp-1")
    regional = caller("Admin", grant("Admin", "Control Planes", "*", "eu"))
    outcome = await world.when(_assign(holder, "Admin", **control_plane), regional)
    assert outcome.state.entity_id == "cp-1"
    outcome = await world.when(_assign(holder, "Admin", **{**control_plane, "entity_id": "cp-2"}), SYSTEM)
    assert len(world.then()) == 1


@pytest.mark.parametrize("kind", HOLDERS)
async def test_assign_role_refuses_a_missing_holder_or_a_role_held(world: World, kind: str) -> None:
    created, gone = _new_holder(kind), _new_holder(kind)
    await world.given(created, role_assigned(created, "Admin"), gone, _deleted(gone))
    await world.then_raises(NotFound, _assign(_holder_of(gone), "Admin"))
    missing = AccountHolder(account_id="nobody") if kind == "account" else TeamHolder(team_id="nobody")
    await world.then_raises(NotFound, _assign(missing, "Admin"))
    await world.then_raises(Conflict, _assign(_holder_of(created), "Admin"), match="already assigned")


async def test_only_tokenledger_changes_a_managed_accounts_roles(world: World) -> None:
    managed = account_created(konnect_managed=True)
    await world.given(managed)
    holder = _holder_of(managed)
    await world.then_raises(Forbidden, _assign(holder, "Admin"), match="konnect-managed")
    assignment = (await world.when(_assign(holder, "Admin"), SYSTEM)).state
    await world.then_raises(
        Forbidden,
        UnassignRole(holder=holder, assignment_id=assignment.assignment_id),
        match="konnect-managed",
    )
    await world.when(UnassignRole(holder=holder, assignment_id=assignment.assignment_id), SYSTEM)
    assert len(world.then()) == 1


async def test_a_caller_without_write_cannot_assign_even_a_role_it_holds(world: World) -> None:
    created = account_created()
    await world.given(created)
    await world.then_raises(MissingRight, _assign(_holder_of(created), "Viewer"), caller("Viewer"))


@pytest.mark.parametrize("kind", HOLDERS)
async def test_a_retried_assign_role_appends_nothing_and_answers_as_before(world: World, kind: str) -> None:
    created = _new_holder(kind)
    await world.given(created)
    command = _assign(_holder_of(created), "Admin")
    first = await world.when(command, key="k")
    retry = await world.when(command, key="k")
    assert world.then() == []
    assert retry == first


@pytest.mark.parametrize("kind", HOLDERS)
async def test_a_retried_assign_role_after_its_unassignment_is_superseded(world: World, kind: str) -> None:
    """The original answer would be an assignment that no longer holds."""
    created = _new_holder(kind)
    await world.given(created)
    command = _assign(_holder_of(created), "Admin")
    first = await world.when(command, key="k")
    await world.when(UnassignRole(holder=_holder_of(created), assignment_id=first.state.assignment_id))
    await world.then_raises(Superseded, command, key="k")


@pytest.mark.parametrize("kind", HOLDERS)
async def test_a_retried_assign_role_is_authorised_again(world: World, kind: str) -> None:
    created = _new_holder(kind)
    await world.given(created)
    caller_with_auditor = caller("Admin", "Auditor")
    command = _assign(_holder_of(created), "Auditor")
    await world.when(command, caller_with_auditor, key="k")
    without_it = caller("Admin", account_id=caller_with_auditor.account_id)
    await world.then_raises(Forbidden, command, without_it, key="k", match="Auditor")


@pytest.mark.parametrize("kind", HOLDERS)
async def test_a_retried_assign_role_after_the_holders_deletion_is_superseded(
    world: World, kind: str
) -> None:
    created = _new_holder(kind)
    await world.given(created)
    command = _assign(_holder_of(created), "Admin")
    await world.when(command, key="k")
    await world.given(_deleted(created))
    await world.then_raises(Superseded, command, key="k")


# -- UnassignRole -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", HOLDERS)
async def test_unassign_role_records_the_end_of_the_assignment(world: World, kind: str) -> None:
    created = _new_holder(kind)
    assigned = role_assigned(created, "Auditor")
    await world.given(created, assigned)
    assignment_id = assigned.assignment_id
    outcome = await world.when(UnassignRole(holder=_holder_of(created), assignment_id=assignment_id))
    expected: Event
    if isinstance(created, AccountCreated):
        expected = AccountRoleUnassigned(account_id=created.account_id, assignment_id=assignment_id)
    else:
        expected = TeamRoleUnassigned(team_id=created.team_id, assignment_id=assignment_id)
    assert world.then() == [(_stream(created), expected)]
    assert outcome.state.roles == {}


@pytest.mark.parametrize("kind", HOLDERS)
async def test_unassign_role_refuses_a_missing_holder_or_assignment(world: World, kind: str) -> None:
    created, gone = _new_holder(kind), _new_holder(kind)
    assigned = role_assigned(gone, "Admin")
    await world.given(created, gone, assigned, _deleted(gone))
    assignment_id = assigned.assignment_id
    await world.then_raises(NotFound, UnassignRole(holder=_holder_of(gone), assignment_id=assignment_id))
    await world.then_raises(
        NotFound, UnassignRole(holder=_holder_of(created), assignment_id=assignment_id), match="assigned role"
    )


@pytest.mark.parametrize("kind", HOLDERS)
async def test_a_retried_unassign_role_appends_nothing_and_answers_as_before(world: World, kind: str) -> None:
    created = _new_holder(kind)
    assigned = role_assigned(created, "Admin")
    await world.given(created, assigned)
    command = UnassignRole(holder=_holder_of(created), assignment_id=assigned.assignment_id)
    first = await world.when(command, key="k")
    retry = await world.when(command, key="k")
    assert world.then() == []
    assert retry == first


@pytest.mark.parametrize("kind", HOLDERS)
async def test_a_retried_unassign_role_after_the_holders_deletion_is_superseded(
    world: World, kind: str
) -> None:
    created = _new_holder(kind)
    assigned = role_assigned(created, "Admin")
    await world.given(created, assigned)
    command = UnassignRole(holder=_holder_of(created), assignment_id=assigned.assignment_id)
    await world.when(command, key="k")
    await world.given(_deleted(created))
    await world.then_raises(Superseded, command, key="k")
