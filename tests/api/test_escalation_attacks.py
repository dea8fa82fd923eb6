"""The escalation attacks of the adversarial review, replayed over HTTP: no caller obtains a token,
or makes anyone hold a role, beyond what it can do itself (the cover rule, docs/security.md).

Each attack asserts the secure answer (403 naming what is missing, or 400) and that the log did not
move; the positive cases next to them show the rule is not a blanket refusal.
"""

from typing import Any

import pytest

from services.bootstrap_admin import BootstrapRefused, bootstrap
from services.composition import Runtime
from tests.api.helpers import in_days
from tests.api.identity_support import (
    account_with_roles,
    assert_problem,
    create_account,
    create_team,
    grant_identity_role,
    issue_token,
    managed_account,
    nothing_written,
    organization_id,
    role,
)
from tests.api_fixture import ApiClient, unique


def token_body(**fields: Any) -> dict[str, Any]:
    return {"name": unique("token"), "expires_at": in_days(30), **fields}


async def introspect(api: ApiClient, secret: str) -> dict[str, Any]:
    reply = await api.post("/v3/tokens/introspect", {"token": secret})
    assert reply.status == 200, reply.body
    answer: dict[str, Any] = reply.body
    return answer


async def test_a_write_scoped_token_cannot_mint_an_unscoped_token_for_an_admin_account(
    api: ApiClient, api_runtime: Runtime
) -> None:
    _, writer = await account_with_roles(api, "Admin", scopes=["identity:write"])
    victim, _ = await account_with_roles(api, "Admin")
    async with nothing_written(api_runtime):
        reply = await api.post(f"/v3/system-accounts/{victim}/access-tokens", token_body(), token=writer)
    assert_problem(reply, 403)
    for missing in ("audit:read", "tokens:introspect", "identity:read"):
        assert missing in reply.body["detail"], reply.body
    # Within its scope it may: a token of the same account narrowed to identity:write.
    narrowed = token_body(scopes=["identity:write"])
    assert (
        await api.post(f"/v3/system-accounts/{victim}/access-tokens", narrowed, token=writer)
    ).status == 201


async def test_a_write_scoped_token_cannot_rotate_an_unscoped_sibling(
    api: ApiClient, api_runtime: Runtime
) -> None:
    account, writer = await account_with_roles(api, "Admin", scopes=["identity:write"])
    sibling = await api.post(f"/v3/system-accounts/{account}/access-tokens", token_body())
    assert sibling.status == 201
    path = f"/v3/system-accounts/{account}/access-tokens/{sibling.body['id']}/rotate"
    async with nothing_written(api_runtime):
        assert_problem(await api.post(path, {}, token=writer), 403)
    assert (await introspect(api, sibling.body["token"]))["active"] is True, "the sibling still works"
    assert (await api.get(f"/v3/audit/events?filter[account_id]={account}", token=writer)).status == 403


async def test_a_scoped_token_may_rotate_itself(api: ApiClient) -> None:
    account, writer = await account_with_roles(api, "Admin", scopes=["identity:write"])
    own_id = (await introspect(api, writer))["token_id"]
    rotated = await api.post(f"/v3/system-accounts/{account}/access-tokens/{own_id}/rotate", {}, token=writer)
    assert rotated.status == 200, rotated.body
    assert (await introspect(api, rotated.body["token"]))["scopes"] == ["identity:write"]


async def test_an_admin_only_account_cannot_mint_a_token_for_the_bootstrap_admin(
    api: ApiClient, api_runtime: Runtime, admin_token: str
) -> None:
    _, admin_only = await account_with_roles(api, "Admin")
    bootstrap_admin = (await introspect(api, admin_token))["account_id"]
    async with nothing_written(api_runtime):
        reply = await api.post(
            f"/v3/system-accounts/{bootstrap_admin}/access-tokens", token_body(), token=admin_only
        )
    assert_problem(reply, 403)
    assert "the Identity role Auditor" in reply.body["detail"], reply.body
    org = await organization_id(api)
    target = await create_account(api)
    async with nothing_written(api_runtime):
        grant = await api.post(
            f"/v3/system-accounts/{target['id']}/assigned-roles",
            role("Auditor", "Identity", org),
            token=admin_only,
        )
    assert_problem(grant, 403)


async def test_no_token_for_an_account_holding_entity_roles_the_caller_lacks(
    api: ApiClient, api_runtime: Runtime
) -> None:
    _, admin_only = await account_with_roles(api, "Admin")
    deployer = await create_account(api, "deployer")
    control_plane = "0b0e8d7a-58b4-4b55-a0b8-3d1f3c1d9e42"
    deployer_path = f"/v3/system-accounts/{deployer['id']}"
    assigned = await api.post(
        f"{deployer_path}/assigned-roles", role("Admin", "Control Planes", control_plane, "eu")
    )
    assert assigned.status == 201, assigned.body
    async with nothing_written(api_runtime):
        reply = await api.post(f"{deployer_path}/access-tokens", token_body(), token=admin_only)
    assert_problem(reply, 403)
    assert f"Admin on Control Planes {control_plane} (region eu)" in reply.body["detail"], reply.body


async def test_tokens_for_accounts_within_the_callers_rights_are_issued(api: ApiClient) -> None:
    _, admin_only = await account_with_roles(api, "Admin")
    for target in (await create_account(api), {"id": (await account_with_roles(api, "Admin"))[0]}):
        path = f"/v3/system-accounts/{target['id']}/access-tokens"
        reply = await api.post(path, token_body(), token=admin_only)
        assert reply.status == 201, reply.body
        assert (await introspect(api, reply.body["token"]))["active"] is True


async def test_holding_a_role_is_what_lets_one_pass_it_on(api: ApiClient, api_runtime: Runtime) -> None:
    """Admin confers every right, but Viewer is a role it does not hold: a Viewer token could grant
    Viewer, which the Admin-only caller cannot (Kubernetes' escalation rule), so it is refused."""
    _, admin_only = await account_with_roles(api, "Admin")
    viewer, _ = await account_with_roles(api, "Viewer")
    async with nothing_written(api_runtime):
        reply = await api.post(f"/v3/system-accounts/{viewer}/access-tokens", token_body(), token=admin_only)
    assert_problem(reply, 403)
    assert "the Identity role Viewer" in reply.body["detail"]


async def test_team_roles_count_on_both_sides(api: ApiClient, api_runtime: Runtime) -> None:
    """Roles held through a team are rights of the target's tokens, and of the caller's."""
    _, admin_only = await account_with_roles(api, "Admin")
    auditors = await create_team(api)
    await grant_identity_role(api, f"/v3/teams/{auditors['id']}", "Auditor")
    member = await create_account(api)
    added = await api.post(f"/v3/teams/{auditors['id']}/system-accounts", {"id": member["id"]})
    assert added.status == 201, added.body
    async with nothing_written(api_runtime):
        reply = await api.post(
            f"/v3/system-accounts/{member['id']}/access-tokens", token_body(), token=admin_only
        )
    assert_problem(reply, 403)
    outsider = await create_account(api)
    async with nothing_written(api_runtime):
        joined = await api.post(
            f"/v3/teams/{auditors['id']}/system-accounts", {"id": outsider["id"]}, token=admin_only
        )
    assert_problem(joined, 403)

    full = await create_account(api, "full")
    for role_name in ("Admin", "Viewer", "Introspector"):
        await grant_identity_role(api, f"/v3/system-accounts/{full['id']}", role_name)
    assert (await api.post(f"/v3/teams/{auditors['id']}/system-accounts", {"id": full["id"]})).status == 201
    full_token = await issue_token(api, full["id"])
    reply = await api.post(
        f"/v3/system-accounts/{member['id']}/access-tokens", token_body(), token=full_token
    )
    assert reply.status == 201, reply.body


async def test_konnect_managed_accounts_are_made_only_by_bootstrap(
    api: ApiClient, api_runtime: Runtime
) -> None:
    async with nothing_written(api_runtime):
        reply = await api.post(
            "/v3/system-accounts", {"name": unique("planted"), "description": "", "konnect_managed": True}
        )
    assert_problem(reply, 400, "konnect_managed")
    ordinary = await api.post(
        "/v3/system-accounts", {"name": unique("plain"), "description": "", "konnect_managed": False}
    )
    assert ordinary.status == 201 and ordinary.body["konnect_managed"] is False


async def test_a_managed_account_never_joins_a_team(api: ApiClient, api_runtime: Runtime) -> None:
    managed = await managed_account(api, api_runtime)
    team = await create_team(api)
    async with nothing_written(api_runtime):
        reply = await api.post(f"/v3/teams/{team['id']}/system-accounts", {"id": managed["id"]})
    assert_problem(reply, 403)


async def test_bootstrap_refuses_the_name_of_an_ordinary_account(
    api: ApiClient, api_runtime: Runtime
) -> None:
    ordinary = await create_account(api, "ordinary")
    async with nothing_written(api_runtime):
        with pytest.raises(BootstrapRefused, match="not managed by tokenledger"):
            await bootstrap(api_runtime.deps, api_runtime.dispatcher, ordinary["name"], api_runtime.clock())
    roles = await api.get(f"/v3/system-accounts/{ordinary['id']}/assigned-roles")
    assert roles.body["data"] == []


async def test_a_narrow_write_token_mints_nothing_wider_than_itself(
    api: ApiClient, api_runtime: Runtime
) -> None:
    """A token scoped to tokens:write alone: no unscoped token of an Admin (even its own account),
    no token with a right it lacks; within its scope, a token as narrow as itself."""
    account, minter = await account_with_roles(api, "Admin", scopes=["tokens:write"])
    victim, _ = await account_with_roles(api, "Admin")
    async with nothing_written(api_runtime):
        for target, fields, missing in [
            (victim, {}, "accounts:write"),
            (account, {}, "identity:read"),
            (account, {"scopes": ["tokens:write", "accounts:write"]}, "accounts:write"),
            (account, {"scopes": ["identity:write"]}, "roles:write"),
        ]:
            reply = await api.post(
                f"/v3/system-accounts/{target}/access-tokens", token_body(**fields), token=minter
            )
            assert_problem(reply, 403)
            assert missing in reply.body["detail"], (fields, reply.body)
    same = await api.post(
        f"/v3/system-accounts/{victim}/access-tokens", token_body(scopes=["tokens:write"]), token=minter
    )
    assert same.status == 201, same.body
    assert (await introspect(api, same.body["token"]))["scopes"] == ["tokens:write"]


async def test_a_roles_write_token_grants_no_role_whose_rights_its_scopes_exclude(
    api: ApiClient, api_runtime: Runtime
) -> None:
    """Holding Admin and Viewer, but scoped to roles:write: Viewer's read rights are outside its
    scopes, so it cannot pass Viewer on, nor Admin, directly or by creating an account holding it."""
    org = await organization_id(api)
    _, granter = await account_with_roles(api, "Admin", "Viewer", scopes=["roles:write", "accounts:write"])
    target = await create_account(api)
    async with nothing_written(api_runtime):
        for role_name in ("Viewer", "Admin"):
            reply = await api.post(
                f"/v3/system-accounts/{target['id']}/assigned-roles",
                role(role_name, "Identity", org),
                token=granter,
            )
            assert_problem(reply, 403)
            assert f"the Identity role {role_name}" in reply.body["detail"], reply.body
            created = await api.post(
                "/v3/system-accounts",
                {
                    "name": unique("made"),
                    "description": "",
                    "assigned_roles": [role(role_name, "Identity", org)],
                },
                token=granter,
            )
            assert_problem(created, 403)


async def test_a_teams_write_token_adds_nobody_to_a_team_beyond_its_scopes(
    api: ApiClient, api_runtime: Runtime
) -> None:
    _, joiner = await account_with_roles(api, "Admin", "Viewer", scopes=["teams:write", "accounts:write"])
    viewers = await create_team(api)
    await grant_identity_role(api, f"/v3/teams/{viewers['id']}", "Viewer")
    member = await create_account(api)
    async with nothing_written(api_runtime):
        joined = await api.post(
            f"/v3/teams/{viewers['id']}/system-accounts", {"id": member["id"]}, token=joiner
        )
        assert_problem(joined, 403)
        created = await api.post(
            "/v3/system-accounts",
            {"name": unique("made"), "description": "", "team_ids": [viewers["id"]]},
            token=joiner,
        )
        assert_problem(created, 403)
        assert "the Identity role Viewer" in created.body["detail"], created.body
    plain = await create_team(api)
    created = await api.post(
        "/v3/system-accounts",
        {"name": unique("made"), "description": "", "team_ids": [plain["id"]]},
        token=joiner,
    )
    assert created.status == 201, created.body


async def test_a_read_token_of_an_auditor_is_refused_at_issue(api: ApiClient, api_runtime: Runtime) -> None:
    """Scopes none of whose rights the account holds would make a token refused everything: 400."""
    auditor, _ = await account_with_roles(api, "Auditor")
    async with nothing_written(api_runtime):
        reply = await api.post(
            f"/v3/system-accounts/{auditor}/access-tokens",
            token_body(scopes=["identity:read", "tokens:write"]),
        )
    assert_problem(reply, 400, "scopes")
    (why,) = reply.body["invalid_parameters"]
    assert "grant nothing" in why["reason"] and "audit:read" in why["reason"], reply.body
    usable = await api.post(f"/v3/system-accounts/{auditor}/access-tokens", token_body(scopes=["audit:read"]))
    assert usable.status == 201, usable.body
