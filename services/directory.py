"""``StreamDirectory``: the ``services.lookups.Directory`` that folds the streams through the event
store port. It is the one place that knows several aggregates' models at once (accounts, teams,
tokens), so that the aggregates themselves stay independent.

Holdings: an account's own role assignments, those of the live teams it is a member of (found
through the membership claims, which commit with the membership), and whether it is the
organization admin. A deletion's cascade: a revocation of each live token (found through the token
name claims, and a federated token, which has none, through its claim under the account) and the
end of each membership. A new account's joining: a membership of each team, conditional on the
team as read (so its roles, which the creator must cover, cannot change meanwhile).
"""

from events.teams import TeamMemberRemoved
from services.accounts import model as accounts
from services.commands import CommandContext, Invalid
from services.lookups import AccountFacts, Cascade, Holdings, Joining
from services.ports import Claim, EventStore, StreamAppend, StreamState
from services.roles.assignment import RoleAssignment
from services.teams import model as teams
from services.tokens import model as tokens


class StreamDirectory:
    def __init__(self, store: EventStore) -> None:
        self._store = store

    async def _account(self, account_id: str) -> accounts.Account:
        return accounts.fold(account_id, await self._store.read_stream(accounts.stream_of(account_id)))

    async def account(self, account_id: str) -> AccountFacts:
        return _facts(account_id, await self._account(account_id))

    async def holdings(self, account_id: str) -> Holdings:
        account = accounts.require_live(await self._account(account_id))
        grants: list[RoleAssignment] = list(account.roles.values())
        memberships = await self._store.claims_with_prefix(teams.memberships_prefix(account_id))
        for stream in sorted(set(memberships.values())):
            team = teams.fold(stream.removeprefix("team-"), await self._store.read_stream(stream))
            if team.live and account_id in team.members:
                grants.extend(team.roles.values())
        return Holdings(_facts(account_id, account), tuple(grants), account.konnect_managed)

    async def deletion_cascade(self, ctx: CommandContext, account_id: str) -> Cascade:
        appends: list[StreamAppend] = []
        token_claims = await self._store.claims_with_prefix(tokens.account_claims_prefix(account_id))
        token_claims |= await self._store.claims_with_prefix(tokens.federated_claims_prefix(account_id))
        for stream in sorted(set(token_claims.values())):
            token = tokens.fold(stream.removeprefix("token-"), await self._store.read_stream(stream))
            revocation = tokens.revoke(token, "account_deleted")
            if revocation:
                appends.append(StreamAppend(stream, ctx.new_events(stream, revocation), token.version))
        membership_claims = await self._store.claims_with_prefix(teams.memberships_prefix(account_id))
        for stream in sorted(set(membership_claims.values())):
            team_id = stream.removeprefix("team-")
            removal = [TeamMemberRemoved(team_id=team_id, account_id=account_id)]
            appends.append(StreamAppend(stream, ctx.new_events(stream, removal), StreamState.ANY))
        return Cascade(tuple(appends), (*token_claims, *membership_claims))

    async def joining(self, ctx: CommandContext, account_id: str, team_ids: tuple[str, ...]) -> Joining:
        appends: list[StreamAppend] = []
        claims: list[Claim] = []
        grants: list[RoleAssignment] = []
        for n, team_id in enumerate(team_ids):
            if team_id in team_ids[:n]:
                raise Invalid(f"team_ids[{n}]", "repeats a team given before it")
            stream = teams.stream_of(team_id)
            team = teams.fold(team_id, await self._store.read_stream(stream))
            if not team.live:
                raise Invalid(f"team_ids[{n}]", "is not a team")
            joined = teams.add_member(team, account_id)
            appends.append(StreamAppend(stream, ctx.new_events(stream, joined), team.version))
            claims.append(Claim(teams.membership_claim(account_id, team_id), stream))
            grants.extend(team.roles.values())
        return Joining(tuple(appends), tuple(claims), tuple(grants))


def _facts(account_id: str, state: accounts.Account) -> AccountFacts:
    return AccountFacts(
        account_id=account_id,
        stream_id=accounts.stream_of(account_id),
        version=state.version,
        live=state.live,
        konnect_managed=state.konnect_managed,
        rotation_period_seconds=state.rotation_period_seconds,
        enabled=state.enabled,
        expires_at=state.expires_at,
        federated_credentials=state.federated_credentials,
    )
