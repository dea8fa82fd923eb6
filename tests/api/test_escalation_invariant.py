"""The escalation invariant, as a hypothesis state machine over HTTP against the real service:

    no sequence of API calls by a caller yields it a credential with rights the caller lacks.

The bootstrap admin lays out a random world: an attacker account with random Identity roles and
Control Plane roles, held directly and through a team, and a token with random scopes; other
accounts and teams holding random roles, with tokens of their own. Then the attacker alone acts, in
random order, with any secret it holds: it issues tokens for any account, rotates any token, assigns
roles to any account or team (its own too), adds and removes members, unassigns roles, creates
accounts and teams, and accounts with roles and teams in one call (what such an account holds must
be within the attacker's rights too). Scopes are drawn from every right and alias; a token whose
scopes grant nothing its account holds is refused at issue, as the oracle predicts. Every secret an
answer carries goes into its wallet. After every step, each active secret in the wallet is
introspected and its capabilities must be covered by the attacker's capabilities at the start,
computed here by an oracle written independently of the server's.
"""

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from tests.api.helpers import in_days
from tests.api.identity_support import create_account, create_team, organization_id, role
from tests.api_fixture import ApiClient, Reply, unique

pytestmark = pytest.mark.slow

T = TypeVar("T")

READS = {"accounts:read", "tokens:read", "roles:read", "teams:read"}
WRITES = {"accounts:write", "tokens:write", "roles:write", "teams:write"}
IDENTITY_RIGHTS = {
    "Admin": READS | WRITES | {"audit:read", "tokens:introspect", "metrics:read"},
    "Viewer": READS,
    "Auditor": {"audit:read"},
    "Introspector": {"tokens:introspect"},
    "Metrics": {"metrics:read"},
}
ALIASES = {"identity:read": READS, "identity:write": WRITES}
SCOPES = sorted({right for rights in IDENTITY_RIGHTS.values() for right in rights} | set(ALIASES))
CONTROL_PLANES = ("6f1a1c7e-2a4b-4f3e-9d1e-1a2b3c4d5e01", "6f1a1c7e-2a4b-4f3e-9d1e-1a2b3c4d5e02")

identity_roles = st.sets(st.sampled_from(sorted(IDENTITY_RIGHTS)), max_size=3)
entity_roles = st.sets(
    st.tuples(
        st.sampled_from(["Admin", "Viewer"]),
        st.sampled_from(CONTROL_PLANES),
        st.sampled_from(["eu", "us", "*"]),
    ),
    max_size=2,
)
scopes = st.none() | st.lists(st.sampled_from(SCOPES), unique=True, max_size=4)
# Mostly writers: a caller that cannot write cannot attempt much.
attacker_identity_roles = st.sets(st.sampled_from(sorted(IDENTITY_RIGHTS)), max_size=3).map(
    lambda r: r | {"Admin"}
)
attacker_scopes = st.none() | st.tuples(
    st.lists(st.sampled_from(SCOPES), unique=True, max_size=3),
    st.sets(st.sampled_from(sorted(WRITES | {"identity:write"})), min_size=1, max_size=3),
).map(lambda drawn: sorted({*drawn[0], *drawn[1]}))


def rights_of_scopes(names: list[str]) -> set[str]:
    return set().union(*(ALIASES.get(name, {name}) for name in names))


def identity_rights(role_names: set[str]) -> set[str]:
    return set().union(*(IDENTITY_RIGHTS.get(name, set()) for name in role_names))


def grants_nothing(role_names: set[str], token_scopes: list[str] | None) -> bool:
    """The server refuses such a token at issue: scopes none of whose rights the roles confer."""
    return bool(token_scopes) and not identity_rights(role_names) & rights_of_scopes(token_scopes or [])


@dataclass(frozen=True)
class Capabilities:
    rights: frozenset[str]
    grantable: frozenset[str]
    entity_roles: frozenset[tuple[str, str, str, str]]

    def covered_by(self, held: "Capabilities") -> bool:
        def covers(have: tuple[str, str, str, str], want: tuple[str, str, str, str]) -> bool:
            return have[:2] == want[:2] and have[2] in ("*", want[2]) and have[3] in ("*", want[3])

        return (
            self.rights <= held.rights
            and self.grantable <= held.grantable
            and all(any(covers(h, w) for h in held.entity_roles) for w in self.entity_roles)
        )


def capabilities(introspection: dict[str, Any], org: str) -> Capabilities:
    roles = introspection["roles"]
    held = {r["role_name"] for r in roles if r["entity_type_name"] == "Identity" and r["entity_id"] == org}
    rights = identity_rights(held)
    if introspection["scopes"] is not None:
        rights &= rights_of_scopes(introspection["scopes"])
    return Capabilities(
        frozenset(rights),
        frozenset(name for name in held if IDENTITY_RIGHTS.get(name, set()) <= rights),
        frozenset(
            (r["entity_type_name"], r["role_name"], r["entity_id"], r["entity_region"])
            for r in roles
            if r["entity_type_name"] != "Identity"
        ),
    )


class Escalation(RuleBasedStateMachine):
    api: ApiClient
    loop: asyncio.AbstractEventLoop
    org: str

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    def call(self, method: str, path: str, body: Any = None, *, token: str) -> Reply:
        reply: Reply = self.run(self.api.request(method, path, body, token=token))
        assert reply.status < 500, (method, path, reply.status, reply.body)
        if isinstance(reply.body, dict) and isinstance(reply.body.get("token"), str):
            self.wallet.append(reply.body["token"])
        return reply

    def root(self, method: str, path: str, body: Any = None) -> Any:
        reply: Reply = self.run(self.api.request(method, path, body))
        assert reply.status in (200, 201), (method, path, reply.body)
        return reply.body

    def give(self, holder: str, identity: set[str], entity: set[tuple[str, str, str]]) -> None:
        for name in sorted(identity):
            self.root("POST", f"{holder}/assigned-roles", role(name, "Identity", self.org))
        for name, control_plane, region in sorted(entity):
            self.root("POST", f"{holder}/assigned-roles", role(name, "Control Planes", control_plane, region))

    def new_account(self, identity: set[str], entity: set[tuple[str, str, str]]) -> str:
        account: str = self.run(create_account(self.api))["id"]
        self.give(f"/v3/system-accounts/{account}", identity, entity)
        return account

    def new_token(self, account: str, token_scopes: list[str] | None, held: set[str]) -> str | None:
        """A token of ``account`` (whose Identity roles are ``held``) issued by the bootstrap admin;
        None when its scopes grant nothing the account can do, which the server refuses (400)."""
        body = {"name": unique("t"), "expires_at": in_days(1), "scopes": token_scopes}
        reply: Reply = self.run(self.api.post(f"/v3/system-accounts/{account}/access-tokens", body))
        if grants_nothing(held, token_scopes):
            assert reply.status == 400 and reply.body["invalid_parameters"][0]["field"] == "scopes", (
                reply.body
            )
            return None
        assert reply.status == 201, (token_scopes, held, reply.body)
        self.tokens.append((account, reply.body["id"]))
        secret: str = reply.body["token"]
        return secret

    def introspect(self, secret: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.root("POST", "/v3/tokens/introspect", {"token": secret})
        return answer

    @initialize(
        attacker_identity=identity_roles | attacker_identity_roles,
        attacker_entity=entity_roles,
        team_identity=identity_roles,
        team_entity=entity_roles,
        attacker_scopes=scopes | attacker_scopes,
        others=st.lists(st.tuples(identity_roles, entity_roles, scopes), min_size=1, max_size=3),
        other_teams=st.lists(st.tuples(identity_roles, entity_roles), min_size=1, max_size=2),
    )
    def world(
        self,
        attacker_identity: set[str],
        attacker_entity: set[tuple[str, str, str]],
        team_identity: set[str],
        team_entity: set[tuple[str, str, str]],
        attacker_scopes: list[str] | None,
        others: list[tuple[set[str], set[tuple[str, str, str]], list[str] | None]],
        other_teams: list[tuple[set[str], set[tuple[str, str, str]]]],
    ) -> None:
        self.wallet: list[str] = []
        self.tokens: list[tuple[str, str]] = []
        self.accounts: list[str] = []
        self.teams: list[str] = []
        self.attacker = self.new_account(attacker_identity, attacker_entity)
        own_team: str = self.run(create_team(self.api))["id"]
        self.give(f"/v3/teams/{own_team}", team_identity, team_entity)
        self.root("POST", f"/v3/teams/{own_team}/system-accounts", {"id": self.attacker})
        self.teams.append(own_team)
        held = attacker_identity | team_identity
        secret = self.new_token(self.attacker, attacker_scopes, held) or self.new_token(
            self.attacker, None, held
        )
        assert secret is not None
        self.wallet.append(secret)
        self.ceiling = capabilities(self.introspect(self.wallet[0]), self.org)
        for identity, entity, token_scopes in others:
            account = self.new_account(identity, entity)
            self.accounts.append(account)
            self.new_token(account, token_scopes, identity)
        for identity, entity in other_teams:
            team: str = self.run(create_team(self.api))["id"]
            self.give(f"/v3/teams/{team}", identity, entity)
            self.teams.append(team)
        self.accounts.append(self.attacker)

    @rule(data=st.data(), token_scopes=scopes)
    def issue(self, data: st.DataObject, token_scopes: list[str] | None) -> None:
        account = data.draw(st.sampled_from(self.accounts))
        body = {"name": unique("t"), "expires_at": in_days(1), "scopes": token_scopes}
        secret = data.draw(st.sampled_from(self.wallet))
        reply = self.call("POST", f"/v3/system-accounts/{account}/access-tokens", body, token=secret)
        if reply.status == 201:
            self.tokens.append((account, reply.body["id"]))

    @rule(data=st.data(), grace=st.sampled_from([0, 3600]))
    def rotate(self, data: st.DataObject, grace: int) -> None:
        account, token = data.draw(st.sampled_from(self.tokens))
        path = f"/v3/system-accounts/{account}/access-tokens/{token}/rotate"
        self.call(
            "POST", path, {"grace_period_seconds": grace}, token=data.draw(st.sampled_from(self.wallet))
        )

    @rule(data=st.data(), identity=identity_roles, entity=entity_roles)
    def assign(self, data: st.DataObject, identity: set[str], entity: set[tuple[str, str, str]]) -> None:
        holder = data.draw(
            st.sampled_from(
                [f"/v3/system-accounts/{a}" for a in self.accounts] + [f"/v3/teams/{t}" for t in self.teams]
            )
        )
        bodies = [role(name, "Identity", self.org) for name in sorted(identity)]
        bodies += [role(name, "Control Planes", cp, region) for name, cp, region in sorted(entity)]
        for body in bodies:
            self.call("POST", f"{holder}/assigned-roles", body, token=data.draw(st.sampled_from(self.wallet)))

    @rule(data=st.data())
    def unassign(self, data: st.DataObject) -> None:
        holder = data.draw(
            st.sampled_from(
                [f"/v3/system-accounts/{a}" for a in self.accounts] + [f"/v3/teams/{t}" for t in self.teams]
            )
        )
        held = self.root("GET", f"{holder}/assigned-roles")["data"]
        if held:
            assignment = data.draw(st.sampled_from(held))["id"]
            self.call(
                "DELETE",
                f"{holder}/assigned-roles/{assignment}",
                token=data.draw(st.sampled_from(self.wallet)),
            )

    @rule(data=st.data())
    def join(self, data: st.DataObject) -> None:
        team, account = data.draw(st.sampled_from(self.teams)), data.draw(st.sampled_from(self.accounts))
        body = {"id": account}
        self.call(
            "POST", f"/v3/teams/{team}/system-accounts", body, token=data.draw(st.sampled_from(self.wallet))
        )

    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        team, account = data.draw(st.sampled_from(self.teams)), data.draw(st.sampled_from(self.accounts))
        path = f"/v3/teams/{team}/system-accounts/{account}"
        self.call("DELETE", path, token=data.draw(st.sampled_from(self.wallet)))

    @rule(data=st.data())
    def create(self, data: st.DataObject) -> None:
        secret = data.draw(st.sampled_from(self.wallet))
        account = self.call(
            "POST", "/v3/system-accounts", {"name": unique("new"), "description": ""}, token=secret
        )
        if account.status == 201:
            self.accounts.append(account.body["id"])
        team = self.call("POST", "/v3/teams", {"name": unique("new")}, token=secret)
        if team.status == 201:
            self.teams.append(team.body["id"])

    @rule(data=st.data(), identity=identity_roles, entity=entity_roles)
    def create_with_roles_and_teams(
        self, data: st.DataObject, identity: set[str], entity: set[tuple[str, str, str]]
    ) -> None:
        """One call: an account holding the roles, a member of the teams, or nothing at all. What it
        holds (directly and through the teams) must be within the attacker's own rights."""
        roles = [role(name, "Identity", self.org) for name in sorted(identity)]
        roles += [role(name, "Control Planes", cp, region) for name, cp, region in sorted(entity)]
        teams = data.draw(st.lists(st.sampled_from(self.teams), unique=True, max_size=2))
        body = {"name": unique("new"), "description": "", "assigned_roles": roles, "team_ids": teams}
        reply = self.call("POST", "/v3/system-accounts", body, token=data.draw(st.sampled_from(self.wallet)))
        if reply.status != 201:
            return
        account = reply.body["id"]
        self.accounts.append(account)
        held = self.root("GET", f"/v3/system-accounts/{account}/assigned-roles")["data"]
        for team in teams:
            held += self.root("GET", f"/v3/teams/{team}/assigned-roles")["data"]
        made = capabilities({"roles": held, "scopes": None}, self.org)
        assert made.covered_by(self.ceiling), (made, self.ceiling)

    @invariant()
    def no_credential_beyond_the_attackers_own(self) -> None:
        for secret in getattr(self, "wallet", []):
            answer = self.introspect(secret)
            if answer["active"]:
                held = capabilities(answer, self.org)
                assert held.covered_by(self.ceiling), (held, self.ceiling)


async def test_no_sequence_of_calls_yields_a_credential_beyond_the_callers_rights(api: ApiClient) -> None:
    Escalation.api = api
    Escalation.loop = asyncio.get_running_loop()
    Escalation.org = await organization_id(api)
    budget = settings(
        max_examples=30,
        stateful_step_count=15,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # shrinking replays HTTP for minutes; steps are printed
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    await asyncio.to_thread(run_state_machine_as_test, Escalation, settings=budget)
