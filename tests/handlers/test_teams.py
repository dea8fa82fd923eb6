"""Teams and their members: create, update, delete, add and remove a member, given events, when the
command, then the events it appended (and the membership claims it moved) or the refusal, which
appends nothing; a retry under an idempotency key appends nothing more and answers as before, or
``Superseded`` when the team is gone. Joining a team grants its roles: the cover rule applies."""

from events.accounts import AccountDeleted
from events.teams import TeamCreated, TeamDeleted, TeamMemberAdded, TeamMemberRemoved, TeamUpdated
from services.commands import Conflict, Forbidden, Invalid, NotFound, Superseded
from services.teams.commands import AddMember, CreateTeam, DeleteTeam, RemoveMember, UpdateTeam
from tests.handlers.world import (
    ADMIN,
    T0,
    World,
    account_created,
    caller,
    grant,
    role_assigned,
    team_created,
)


def _team(team_id: str) -> str:
    return f"team-{team_id}"


def _membership(account_id: str, team_id: str) -> str:
    return f"team-member:{account_id}:{team_id}"


# -- CreateTeam ---------------------------------------------------------------------------------


async def test_create_team_records_the_team(world: World) -> None:
    outcome = await world.when(CreateTeam(name="ops", description="on call", labels=(("env", "prod"),)))
    team = outcome.state
    assert world.then() == [
        (
            _team(team.team_id),
            TeamCreated(team_id=team.team_id, name="ops", description="on call", labels={"env": "prod"}),
        )
    ]
    assert (team.name, team.labels, team.live, team.created_at) == ("ops", {"env": "prod"}, True, T0)
    assert outcome.cursor == world.then_recorded()[-1].cursor


async def test_create_team_refuses_a_bad_name_or_labels(world: World) -> None:
    await world.then_raises(Invalid, CreateTeam(name="o\u200bps"), match="name")
    await world.then_raises(Invalid, CreateTeam(name="ops", labels=(("kong-env", "x"),)), match="labels")
    await world.then_raises(Invalid, CreateTeam(name="ops", labels=(("env", "not a label"),)), match="labels")


async def test_a_retried_create_team_appends_nothing_and_answers_as_before(world: World) -> None:
    command = CreateTeam(name="ops")
    first = await world.when(command, key="k")
    retry = await world.when(command, key="k")
    assert world.then() == []
    assert retry == first


async def test_a_retried_create_team_after_its_deletion_is_superseded(world: World) -> None:
    command = CreateTeam(name="ops")
    first = await world.when(command, key="k")
    await world.when(DeleteTeam(team_id=first.state.team_id))
    await world.then_raises(Superseded, command, key="k")


# -- UpdateTeam ---------------------------------------------------------------------------------


async def test_update_team_merges_labels(world: World) -> None:
    team = team_created("ops", description="old", labels={"env": "prod", "tier": "1"})
    await world.given(team)
    outcome = await world.when(
        UpdateTeam(
            team_id=team.team_id,
            name="ops-2",
            labels=(("tier", None), ("owner", "sre")),
            labels_given=True,
        )
    )
    assert world.then() == [
        (
            _team(team.team_id),
            TeamUpdated(
                team_id=team.team_id, name="ops-2", description="old", labels={"env": "prod", "owner": "sre"}
            ),
        )
    ]
    assert outcome.state.labels == {"env": "prod", "owner": "sre"}


async def test_update_team_with_null_labels_removes_them_all(world: World) -> None:
    team = team_created("ops", labels={"env": "prod"})
    await world.given(team)
    await world.when(UpdateTeam(team_id=team.team_id, labels=None, labels_given=True))
    assert world.then() == [
        (_team(team.team_id), TeamUpdated(team_id=team.team_id, name="ops", description=""))
    ]


async def test_an_update_team_that_changes_nothing_appends_nothing(world: World) -> None:
    team = team_created("ops", labels={"env": "prod"})
    await world.given(team)
    outcome = await world.when(UpdateTeam(team_id=team.team_id, name="ops", labels=(), labels_given=True))
    assert world.then() == []
    assert outcome.cursor is None


async def test_update_team_refuses_a_missing_team_or_bad_values(world: World) -> None:
    team, gone = team_created("ops"), team_created()
    await world.given(team, gone, TeamDeleted(team_id=gone.team_id))
    await world.then_raises(NotFound, UpdateTeam(team_id="nobody", name="x"))
    await world.then_raises(NotFound, UpdateTeam(team_id=gone.team_id, name="x"))
    await world.then_raises(Invalid, UpdateTeam(team_id=team.team_id, name=""))
    await world.then_raises(
        Invalid, UpdateTeam(team_id=team.team_id, labels=(("_x", "y"),), labels_given=True), match="labels"
    )


async def test_a_retried_update_team_appends_nothing_and_answers_as_before(world: World) -> None:
    team = team_created("ops")
    await world.given(team)
    command = UpdateTeam(team_id=team.team_id, description="first")
    first = await world.when(command, key="k")
    await world.when(UpdateTeam(team_id=team.team_id, description="second"))
    retry = await world.when(command, key="k")
    assert world.then() == []
    assert retry == first


async def test_a_retried_update_team_after_its_deletion_is_superseded(world: World) -> None:
    team = team_created("ops")
    await world.given(team)
    command = UpdateTeam(team_id=team.team_id, description="first")
    await world.when(command, key="k")
    await world.when(DeleteTeam(team_id=team.team_id))
    await world.then_raises(Superseded, command, key="k")


# -- DeleteTeam ---------------------------------------------------------------------------------


async def test_delete_team_releases_its_memberships(world: World) -> None:
    team, member = team_created("ops"), account_created()
    await world.given(member, team, TeamMemberAdded(team_id=team.team_id, account_id=member.account_id))
    outcome = await world.when(DeleteTeam(team_id=team.team_id))
    assert world.then() == [(_team(team.team_id), TeamDeleted(team_id=team.team_id))]
    assert not outcome.state.live
    assert _membership(member.account_id, team.team_id) not in await world.claims()


async def test_delete_team_refuses_a_missing_team(world: World) -> None:
    gone = team_created()
    await world.given(gone, TeamDeleted(team_id=gone.team_id))
    await world.then_raises(NotFound, DeleteTeam(team_id="nobody"))
    await world.then_raises(NotFound, DeleteTeam(team_id=gone.team_id))


async def test_a_retried_delete_team_appends_nothing_and_answers_as_before(world: World) -> None:
    team = team_created("ops")
    await world.given(team)
    first = await world.when(DeleteTeam(team_id=team.team_id), key="k")
    retry = await world.when(DeleteTeam(team_id=team.team_id), key="k")
    assert world.then() == []
    assert retry == first


# -- AddMember ----------------------------------------------------------------------------------


async def test_add_member_records_the_membership_and_claims_it(world: World) -> None:
    team, member = team_created("ops"), account_created()
    await world.given(member, team, role_assigned(team, "Viewer"))
    outcome = await world.when(
        AddMember(team_id=team.team_id, account_id=member.account_id), caller("Admin", "Viewer")
    )
    assert world.then() == [
        (_team(team.team_id), TeamMemberAdded(team_id=team.team_id, account_id=member.account_id))
    ]
    assert outcome.state.members == frozenset({member.account_id})
    assert (await world.claims())[_membership(member.account_id, team.team_id)] == _team(team.team_id)


async def test_add_member_needs_covering_the_teams_roles(world: World) -> None:
    team, member = team_created("ops"), account_created()
    control_plane = {"entity_type_name": "Control Planes", "entity_id": "cp-1", "entity_region": "eu"}
    await world.given(
        member, team, role_assigned(team, "Auditor"), role_assigned(team, "Admin", **control_plane)
    )
    command = AddMember(team_id=team.team_id, account_id=member.account_id)
    refused = await world.then_raises(Forbidden, command, match="the Identity role Auditor")
    assert "Admin on Control Planes cp-1" in str(refused)
    every_control_plane = grant("Admin", "Control Planes", "*", "*")
    await world.then_raises(Forbidden, command, caller("Admin", "Auditor"), match="Control Planes")
    await world.when(command, caller("Admin", "Auditor", every_control_plane))
    assert [event for _, event in world.then()] == [
        TeamMemberAdded(team_id=team.team_id, account_id=member.account_id)
    ]


async def test_add_member_refuses_what_cannot_join(world: World) -> None:
    team, gone_team = team_created("ops"), team_created()
    member, gone, managed = account_created(), account_created(), account_created(konnect_managed=True)
    await world.given(
        team,
        gone_team,
        TeamDeleted(team_id=gone_team.team_id),
        member,
        gone,
        AccountDeleted(account_id=gone.account_id),
        managed,
        TeamMemberAdded(team_id=team.team_id, account_id=member.account_id),
    )
    await world.then_raises(
        Forbidden, AddMember(team_id=team.team_id, account_id=ADMIN.account_id), match="its own"
    )
    await world.then_raises(NotFound, AddMember(team_id="nobody", account_id=member.account_id), match="team")
    await world.then_raises(NotFound, AddMember(team_id=gone_team.team_id, account_id=member.account_id))
    await world.then_raises(NotFound, AddMember(team_id=team.team_id, account_id="nobody"), match="account")
    await world.then_raises(NotFound, AddMember(team_id=team.team_id, account_id=gone.account_id))
    await world.then_raises(
        Forbidden, AddMember(team_id=team.team_id, account_id=managed.account_id), match="konnect-managed"
    )
    await world.then_raises(
        Conflict, AddMember(team_id=team.team_id, account_id=member.account_id), match="already a member"
    )


async def test_a_retried_add_member_appends_nothing_and_answers_as_before(world: World) -> None:
    team, member = team_created("ops"), account_created()
    await world.given(member, team)
    command = AddMember(team_id=team.team_id, account_id=member.account_id)
    first = await world.when(command, key="k")
    retry = await world.when(command, key="k")
    assert world.then() == []
    assert retry == first


async def test_a_retried_add_member_is_authorised_again(world: World) -> None:
    """The team gained a role since: the retry is refused, not answered, unless the caller covers it."""
    team, member = team_created("ops"), account_created()
    await world.given(member, team)
    command = AddMember(team_id=team.team_id, account_id=member.account_id)
    await world.when(command, key="k")
    await world.given(role_assigned(team, "Auditor"))
    await world.then_raises(Forbidden, command, key="k", match="Auditor")


async def test_a_retried_add_member_after_the_team_was_deleted_is_superseded(world: World) -> None:
    team, member = team_created("ops"), account_created()
    await world.given(member, team)
    command = AddMember(team_id=team.team_id, account_id=member.account_id)
    await world.when(command, key="k")
    await world.when(DeleteTeam(team_id=team.team_id))
    await world.then_raises(Superseded, command, key="k")


async def test_a_retried_add_member_after_the_member_left_is_superseded(world: World) -> None:
    team, member = team_created("ops"), account_created()
    await world.given(member, team)
    command = AddMember(team_id=team.team_id, account_id=member.account_id)
    await world.when(command, key="k")
    await world.when(RemoveMember(team_id=team.team_id, account_id=member.account_id))
    await world.then_raises(Superseded, command, key="k")


# -- RemoveMember -------------------------------------------------------------------------------


async def test_remove_member_records_the_end_and_releases_the_claim(world: World) -> None:
    team, member = team_created("ops"), account_created()
    await world.given(member, team, TeamMemberAdded(team_id=team.team_id, account_id=member.account_id))
    outcome = await world.when(RemoveMember(team_id=team.team_id, account_id=member.account_id))
    assert world.then() == [
        (_team(team.team_id), TeamMemberRemoved(team_id=team.team_id, account_id=member.account_id))
    ]
    assert outcome.state.members == frozenset()
    assert await world.claims() == {f"account-name:{member.name}": f"account-{member.account_id}"}


async def test_remove_member_refuses_what_is_not_a_membership(world: World) -> None:
    team, gone_team, member = team_created("ops"), team_created(), account_created()
    await world.given(member, team, gone_team, TeamDeleted(team_id=gone_team.team_id))
    await world.then_raises(
        Forbidden, RemoveMember(team_id=team.team_id, account_id=ADMIN.account_id), match="its own"
    )
    await world.then_raises(NotFound, RemoveMember(team_id="nobody", account_id=member.account_id))
    await world.then_raises(NotFound, RemoveMember(team_id=gone_team.team_id, account_id=member.account_id))
    await world.then_raises(
        NotFound, RemoveMember(team_id=team.team_id, account_id=member.account_id), match="not a member"
    )


async def test_a_retried_remove_member_appends_nothing_and_answers_as_before(world: World) -> None:
    team, member = team_created("ops"), account_created()
    await world.given(member, team, TeamMemberAdded(team_id=team.team_id, account_id=member.account_id))
    command = RemoveMember(team_id=team.team_id, account_id=member.account_id)
    first = await world.when(command, key="k")
    retry = await world.when(command, key="k")
    assert world.then() == []
    assert retry == first


async def test_a_retried_remove_member_after_the_team_was_deleted_is_superseded(world: World) -> None:
    team, member = team_created("ops"), account_created()
    await world.given(member, team, TeamMemberAdded(team_id=team.team_id, account_id=member.account_id))
    command = RemoveMember(team_id=team.team_id, account_id=member.account_id)
    await world.when(command, key="k")
    await world.when(DeleteTeam(team_id=team.team_id))
    await world.then_raises(Superseded, command, key="k")


async def test_a_retried_remove_member_after_the_member_rejoined_is_superseded(world: World) -> None:
    team, member = team_created("ops"), account_created()
    await world.given(member, team, TeamMemberAdded(team_id=team.team_id, account_id=member.account_id))
    command = RemoveMember(team_id=team.team_id, account_id=member.account_id)
    await world.when(command, key="k")
    await world.when(AddMember(team_id=team.team_id, account_id=member.account_id))
    await world.then_raises(Superseded, command, key="k")
