"""Command handlers for teams, their members and their roles.

Joining a team confers the team's roles, so adding a member is granting them: the actor must be
able to grant all of them (``check_can_grant``), as when assigning them directly; and only
tokenledger's own (bootstrap) may place a konnect-managed account, so none joins a team. Adding a
member
also checks, in the same append, that the account stream has not moved (so no member
joins a deleted account's teams) and claims ``team-member:<account>:<team>``, which is how an
account's deletion finds the teams to leave.

Every handler first looks for its own events in the team's stream (``commands.recorded``): a retry
of a command that committed answers with its original outcome and never decides again.
"""

from services import repository
from services.authorization import Actor, SystemActor, check_can_grant, check_not_self_membership
from services.commands import CommandContext, Outcome, with_retries
from services.dependencies import Dependencies
from services.ports import Claim
from services.teams import model
from services.teams.commands import (
    AddMember,
    CreateTeam,
    DeleteTeam,
    RemoveMember,
    UpdateTeam,
)
from services.teams.model import TEAMS, Team


async def create_team(
    deps: Dependencies, ctx: CommandContext, actor: Actor | SystemActor, command: CreateTeam
) -> Outcome[Team]:
    name, description, labels = command.name, command.description, dict(command.labels)
    team_id = ctx.new_id("team")
    state, retried = await repository.load(deps.store, TEAMS, ctx, team_id, new=True)
    if retried is not None:
        return retried.original()
    return await repository.append(
        deps.store, TEAMS, ctx, state, model.create(team_id, name, description, labels)
    )


async def update_team(
    deps: Dependencies, ctx: CommandContext, actor: Actor | SystemActor, command: UpdateTeam
) -> Outcome[Team]:
    team_id, name, description = command.team_id, command.name, command.description
    labels = None if command.labels is None else dict(command.labels)
    labels_given = command.labels_given

    async def attempt() -> Outcome[Team]:
        state, retried = await repository.load(deps.store, TEAMS, ctx, team_id)
        if retried is not None:
            return retried.original()
        new_labels = model.merge_labels(state.labels, labels) if labels_given else None
        return await repository.append(
            deps.store, TEAMS, ctx, state, model.update(state, name, description, new_labels)
        )

    return await with_retries(attempt)


async def delete_team(
    deps: Dependencies, ctx: CommandContext, actor: Actor | SystemActor, command: DeleteTeam
) -> Outcome[Team]:
    team_id = command.team_id

    async def attempt() -> Outcome[Team]:
        state, retried = await repository.load(deps.store, TEAMS, ctx, team_id)
        if retried is not None:
            return retried.original()
        releases = [model.membership_claim(account_id, team_id) for account_id in sorted(state.members)]
        return await repository.append(deps.store, TEAMS, ctx, state, model.delete(state), releases=releases)

    return await with_retries(attempt)


async def add_member(
    deps: Dependencies, ctx: CommandContext, actor: Actor | SystemActor, command: AddMember
) -> Outcome[Team]:
    team_id, account_id = command.team_id, command.account_id
    check_not_self_membership(actor, account_id)

    async def attempt() -> Outcome[Team]:
        state, retried = await repository.load(deps.store, TEAMS, ctx, team_id)
        check_can_grant(actor, deps.organization_id, state.roles.values())
        if retried is not None:
            return retried.original(holds=account_id in state.members)
        model.require_live(state)
        account = (await deps.directory.account(account_id)).require_live().require_unmanaged()
        condition = account.unchanged()
        claim = Claim(model.membership_claim(account_id, team_id), model.stream_of(team_id))
        events = model.add_member(state, account_id)
        return await repository.append(
            deps.store, TEAMS, ctx, state, events, conditions=[condition], claims=[claim]
        )

    return await with_retries(attempt)


async def remove_member(
    deps: Dependencies, ctx: CommandContext, actor: Actor | SystemActor, command: RemoveMember
) -> Outcome[Team]:
    team_id, account_id = command.team_id, command.account_id
    check_not_self_membership(actor, account_id)

    async def attempt() -> Outcome[Team]:
        state, retried = await repository.load(deps.store, TEAMS, ctx, team_id)
        if retried is not None:
            return retried.original(holds=account_id not in state.members)
        events = model.remove_member(state, account_id)
        return await repository.append(
            deps.store, TEAMS, ctx, state, events, releases=[model.membership_claim(account_id, team_id)]
        )

    return await with_retries(attempt)
