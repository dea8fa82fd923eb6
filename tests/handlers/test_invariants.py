"""Invariants of the command side over random sequences of commands (a hypothesis state machine on
the in-memory store, keys claimed by the dispatcher as the HTTP door's are): a refused command
appends nothing and moves no claim; a retry under the key of any earlier command that was carried
out, whether it appended or changed nothing, appends nothing and answers with that command's
outcome, or is refused; and the uniqueness claims are exactly what the streams fold to (the names
of live accounts, the names of the visible tokens of live accounts, the memberships of live teams)."""

import asyncio
import itertools
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, TypeVar

import msgspec
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, multiple, precondition, rule

from services.accounts import model as accounts
from services.accounts.commands import CreateAccount, DeleteAccount, UpdateAccount
from services.commands import DomainError, Outcome
from services.role_holders import AccountHolder, AssignRole, TeamHolder
from services.teams import model as teams
from services.teams.commands import AddMember, CreateTeam, DeleteTeam, RemoveMember
from services.tokens import model as tokens
from services.tokens.commands import DeleteToken, IssueToken, RenameToken, RevokeToken, RotateToken
from tests.handlers.world import ORG, T0, MemoryClaims, World, caller

T = TypeVar("T")
NAMES = st.sampled_from(["alpha", "beta", "gamma"])
ROLES = st.sampled_from(
    [
        ("Admin", "Identity", ORG, "*"),
        ("Viewer", "Identity", ORG, "*"),
        ("Auditor", "Identity", ORG, "*"),
        ("Admin", "Control Planes", "cp-1", "us"),
    ]
)
ACTOR = caller("Admin", "Viewer", "Auditor", "Introspector")
"""Holds every Identity role, and no Control Plane role: some grants and tokens are beyond it."""


class Sent(msgspec.Struct, frozen=True):
    command: object
    key: str
    outcome: Outcome[Any]


class CommandSide(RuleBasedStateMachine):
    accounts = Bundle("accounts")
    teams = Bundle("teams")
    tokens = Bundle("tokens")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.world = World(claims=MemoryClaims())
        self.sent: list[Sent] = []
        self.keys = itertools.count()

    def teardown(self) -> None:
        self.loop.close()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def send(self, command: object, keyed: bool) -> Outcome[Any] | None:
        """The outcome, or None when refused (having checked that the refusal changed nothing)."""
        key = f"key-{next(self.keys)}" if keyed else None
        length, claims = len(self.run(self.world.log())), self.run(self.world.claims())
        try:
            outcome = self.run(self.world.when(command, ACTOR, key=key))
        except DomainError:
            assert len(self.run(self.world.log())) == length
            assert self.run(self.world.claims()) == claims
            return None
        if key is not None:
            self.sent.append(Sent(command, key, outcome))
        return outcome

    @rule(target=accounts, name=NAMES, keyed=st.booleans())
    def create_account(self, name: str, keyed: bool) -> object:
        outcome = self.send(CreateAccount(name=name, description=""), keyed)
        return multiple() if outcome is None else outcome.state.account_id

    @rule(account_id=accounts, name=NAMES, keyed=st.booleans())
    def rename_account(self, account_id: str, name: str, keyed: bool) -> None:
        self.send(UpdateAccount(account_id=account_id, name=name), keyed)

    @rule(account_id=accounts, description=st.sampled_from(["", "ci"]), keyed=st.booleans())
    def describe_account(self, account_id: str, description: str, keyed: bool) -> None:
        """Often a change of nothing: the description is one of two."""
        self.send(UpdateAccount(account_id=account_id, description=description), keyed)

    @rule(account_id=accounts, keyed=st.booleans())
    def delete_account(self, account_id: str, keyed: bool) -> None:
        self.send(DeleteAccount(account_id=account_id), keyed)

    @rule(target=teams, name=NAMES, keyed=st.booleans())
    def create_team(self, name: str, keyed: bool) -> object:
        outcome = self.send(CreateTeam(name=name), keyed)
        return multiple() if outcome is None else outcome.state.team_id

    @rule(team_id=teams, keyed=st.booleans())
    def delete_team(self, team_id: str, keyed: bool) -> None:
        self.send(DeleteTeam(team_id=team_id), keyed)

    @rule(team_id=teams, account_id=accounts, keyed=st.booleans())
    def add_member(self, team_id: str, account_id: str, keyed: bool) -> None:
        self.send(AddMember(team_id=team_id, account_id=account_id), keyed)

    @rule(team_id=teams, account_id=accounts, keyed=st.booleans())
    def remove_member(self, team_id: str, account_id: str, keyed: bool) -> None:
        self.send(RemoveMember(team_id=team_id, account_id=account_id), keyed)

    @rule(
        holder=st.one_of(
            accounts.map(lambda a: AccountHolder(account_id=a)), teams.map(lambda t: TeamHolder(team_id=t))
        ),
        role=ROLES,
        keyed=st.booleans(),
    )
    def assign_role(
        self, holder: AccountHolder | TeamHolder, role: tuple[str, str, str, str], keyed: bool
    ) -> None:
        role_name, entity_type_name, entity_id, entity_region = role
        command = AssignRole(
            holder=holder,
            role_name=role_name,
            entity_type_name=entity_type_name,
            entity_id=entity_id,
            entity_region=entity_region,
        )
        self.send(command, keyed)

    @rule(target=tokens, account_id=accounts, name=NAMES, scoped=st.booleans(), keyed=st.booleans())
    def issue_token(self, account_id: str, name: str, scoped: bool, keyed: bool) -> object:
        scopes = ("identity:read",) if scoped else None
        command = IssueToken(
            account_id=account_id, name=name, expires_at=T0 + timedelta(days=1), scopes=scopes
        )
        outcome = self.send(command, keyed)
        return multiple() if outcome is None else (account_id, outcome.state.token.token_id)

    @rule(token=tokens, name=NAMES, keyed=st.booleans())
    def rename_token(self, token: tuple[str, str], name: str, keyed: bool) -> None:
        self.send(RenameToken(account_id=token[0], token_id=token[1], name=name), keyed)

    @rule(token=tokens, grace=st.sampled_from([0, 60]), keyed=st.booleans())
    def rotate_token(self, token: tuple[str, str], grace: int, keyed: bool) -> None:
        self.send(RotateToken(account_id=token[0], token_id=token[1], grace_period_seconds=grace), keyed)

    @rule(token=tokens, keyed=st.booleans())
    def revoke_token(self, token: tuple[str, str], keyed: bool) -> None:
        self.send(RevokeToken(account_id=token[0], token_id=token[1]), keyed)

    @rule(token=tokens, keyed=st.booleans())
    def delete_token(self, token: tuple[str, str], keyed: bool) -> None:
        self.send(DeleteToken(account_id=token[0], token_id=token[1]), keyed)

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        """Any earlier keyed command again: nothing appended, and its outcome or a refusal."""
        sent = data.draw(st.sampled_from(self.sent))
        length = len(self.run(self.world.log()))
        try:
            outcome = self.run(self.world.when(sent.command, ACTOR, key=sent.key))
        except DomainError:
            outcome = None
        assert len(self.run(self.world.log())) == length
        assert outcome is None or outcome == sent.outcome

    @invariant()
    def claims_are_what_the_streams_hold(self) -> None:
        folded: dict[str, list[Any]] = {}
        for recorded in self.run(self.world.log()):
            folded.setdefault(recorded.stream_id, []).append(recorded)
        live_accounts = {}
        expected: dict[str, str] = {}
        for stream, history in folded.items():
            if stream.startswith("account-"):
                account = accounts.fold(stream.removeprefix("account-"), history)
                if account.live:
                    live_accounts[account.account_id] = account
                    expected[accounts.name_claim(account.name)] = stream
        for stream, history in folded.items():
            if stream.startswith("token-"):
                token = tokens.fold(stream.removeprefix("token-"), history)
                if token.account_id in live_accounts and token.visible:
                    expected[tokens.name_claim(token.account_id, token.name)] = stream
            elif stream.startswith("team-"):
                team = teams.fold(stream.removeprefix("team-"), history)
                for member in team.members if team.live else ():
                    expected[teams.membership_claim(member, team.team_id)] = stream
        claims = self.run(self.world.claims())
        assert claims == expected


CommandSide.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestCommandSide = CommandSide.TestCase
