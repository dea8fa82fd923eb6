"""A keyed command that changed nothing appends no event, so its retry cannot be answered from the
log: the dispatcher keeps what its answer was decided on with the key's claim (``Unchanged``), and a
retry is answered as of it, appending nothing, even when the state has moved since (where deciding
again would now change something); or it is refused as ``Superseded`` once the aggregate is gone.
The world claims keys as the HTTP door does (``MemoryClaims``)."""

from events.tokens import TokenRevoked
from services.accounts.commands import DeleteAccount, UpdateAccount
from services.commands import Superseded, Unchanged
from services.teams.commands import DeleteTeam, UpdateTeam
from services.tokens.commands import DeleteToken, RenameToken, RevokeToken
from tests.handlers.world import MemoryClaims, World, account_created, team_created, token_issued


def _world() -> World:
    return World(claims=MemoryClaims())


async def test_a_retried_update_account_that_changed_nothing_answers_as_before() -> None:
    world = _world()
    created = account_created("ci-bot", description="same")
    await world.given(created)
    command = UpdateAccount(account_id=created.account_id, description="same")
    first = await world.when(command, key="k")
    assert world.then() == [] and first.unchanged == Unchanged(f"account-{created.account_id}", 1)
    await world.when(UpdateAccount(account_id=created.account_id, description="moved"))
    retry = await world.when(command, key="k")
    assert world.then() == []
    assert retry == first and retry.state.description == "same"
    await world.when(DeleteAccount(account_id=created.account_id))
    await world.then_raises(Superseded, command, key="k")


async def test_a_retried_update_team_that_changed_nothing_answers_as_before() -> None:
    world = _world()
    team = team_created("ops")
    await world.given(team)
    command = UpdateTeam(team_id=team.team_id, name="ops")
    first = await world.when(command, key="k")
    await world.when(UpdateTeam(team_id=team.team_id, name="platform"))
    retry = await world.when(command, key="k")
    assert world.then() == []
    assert retry == first and retry.state.name == "ops"
    await world.when(DeleteTeam(team_id=team.team_id))
    await world.then_raises(Superseded, command, key="k")


async def test_a_retried_rename_to_the_same_name_answers_as_before() -> None:
    world = _world()
    account = account_created()
    token = token_issued(account.account_id, "deploy")
    await world.given(account, token)
    command = RenameToken(account_id=account.account_id, token_id=token.token_id, name="deploy")
    first = await world.when(command, key="k")
    await world.when(RenameToken(account_id=account.account_id, token_id=token.token_id, name="other"))
    retry = await world.when(command, key="k")
    assert world.then() == []
    assert retry == first and retry.state.name == "deploy"
    await world.when(DeleteToken(account_id=account.account_id, token_id=token.token_id))
    await world.then_raises(Superseded, command, key="k")


async def test_a_retried_revoke_of_a_revoked_token_answers_as_before() -> None:
    world = _world()
    account = account_created()
    token = token_issued(account.account_id)
    await world.given(
        account, token, TokenRevoked(token_id=token.token_id, account_id=account.account_id, reason="x")
    )
    command = RevokeToken(account_id=account.account_id, token_id=token.token_id)
    first = await world.when(command, key="k")
    retry = await world.when(command, key="k")
    assert world.then() == [] and retry == first


async def test_a_no_op_under_one_key_is_not_the_answer_under_another() -> None:
    """Only a retry under the same key (and credential) is answered as of the no-op."""
    world = _world()
    created = account_created("ci-bot", description="same")
    await world.given(created)
    await world.when(UpdateAccount(account_id=created.account_id, description="same"), key="k")
    await world.when(UpdateAccount(account_id=created.account_id, description="moved"))
    again = await world.when(UpdateAccount(account_id=created.account_id, description="same"), key="other")
    assert [event.description for _, event in world.then()] == ["same"]  # type: ignore[attr-defined]
    assert again.cursor is not None
