"""What a system account holds right now, folded from the log: its own role assignments, those of
the teams it is a member of (found through the membership claims, which commit with the
membership), and whether it is the organization admin (konnect-managed: made only by bootstrap).

This is what the cover rule (``services.authorization``) compares a caller against when the caller
would obtain one of the account's credentials. It reads the streams, never a read model, so a grant
that committed a moment ago is already counted.
"""

import msgspec

from services.accounts import handlers as accounts
from services.accounts import model as account_model
from services.dependencies import Dependencies
from services.roles.assignment import RoleAssignment
from services.teams import handlers as teams
from services.teams import model as team_model


class Holdings(msgspec.Struct, frozen=True):
    grants: tuple[RoleAssignment, ...]
    organization_admin: bool


async def team_grants(deps: Dependencies, account_id: str) -> list[RoleAssignment]:
    """The role assignments of every live team ``account_id`` belongs to."""
    grants: list[RoleAssignment] = []
    memberships = await deps.store.claims_with_prefix(team_model.memberships_prefix(account_id))
    for stream in sorted(set(memberships.values())):
        team = await teams.load(deps, stream.removeprefix("team-"))
        if team.live and account_id in team.members:
            grants.extend(team.roles.values())
    return grants


async def holdings_of(deps: Dependencies, account: account_model.Account) -> Holdings:
    grants = (*account.roles.values(), *await team_grants(deps, account.account_id))
    return Holdings(grants, account.konnect_managed)


async def load_holdings(deps: Dependencies, account_id: str) -> Holdings:
    return await holdings_of(deps, account_model.require_live(await accounts.load(deps, account_id)))
