"""One-call creation over HTTP: ``POST /v3/system-accounts`` with ``assigned_roles`` and ``team_ids``
(our extension) makes the account, its roles and its memberships in one append, under the rules of
the separate calls (the catalogue, the cover rule for each role and for every role of each team,
the rights ``roles:write`` and ``teams:write``); any refusal writes nothing, and a retry under the
same ``Idempotency-Key`` answers as the first time."""

from typing import Any

from services.composition import Runtime
from tests.api.helpers import in_days
from tests.api.identity_support import (
    account_with_roles,
    assert_problem,
    create_team,
    grant_identity_role,
    nothing_written,
    organization_id,
    role,
)
from tests.api_fixture import ApiClient, unique

CONTROL_PLANE = "0b0e8d7a-58b4-4b55-a0b8-3d1f3c1d9e42"
MISSING_TEAM = "7d6c1e2a-0000-4000-8000-000000000000"


def account_body(**fields: Any) -> dict[str, Any]:
    return {"name": unique("made"), "description": "in one call", **fields}


async def introspect(api: ApiClient, secret: str) -> dict[str, Any]:
    reply = await api.post("/v3/tokens/introspect", {"token": secret})
    assert reply.status == 200, reply.body
    answer: dict[str, Any] = reply.body
    return answer


async def test_an_account_is_made_with_its_roles_and_teams(api: ApiClient, api_runtime: Runtime) -> None:
    org = await organization_id(api)
    team = await create_team(api)
    await grant_identity_role(api, f"/v3/teams/{team['id']}", "Auditor")
    roles = [role("Viewer", "Identity", org), role("Admin", "Control Planes", CONTROL_PLANE, "eu")]
    reply = await api.post("/v3/system-accounts", account_body(assigned_roles=roles, team_ids=[team["id"]]))
    assert reply.status == 201, reply.body
    made = reply.body
    assert made["team_ids"] == [team["id"]]
    assert [{k: v for k, v in r.items() if k != "id"} for r in made["assigned_roles"]] == roles
    account = made["id"]

    listed = (await api.get(f"/v3/system-accounts/{account}/assigned-roles")).body["data"]
    assert sorted(r["id"] for r in listed) == sorted(r["id"] for r in made["assigned_roles"])
    teams = (await api.get(f"/v3/system-accounts/{account}/teams")).body["data"]
    assert [t["id"] for t in teams] == [team["id"]]
    assert (await api.get(f"/v3/system-accounts/{account}")).body["name"] == made["name"]

    token = await api.post(
        f"/v3/system-accounts/{account}/access-tokens", {"name": "t", "expires_at": in_days(1)}
    )
    assert token.status == 201, token.body
    held = {
        (r["role_name"], r["entity_type_name"], r["source"])
        for r in (await introspect(api, token.body["token"]))["roles"]
    }
    assert held == {
        ("Viewer", "Identity", "direct"),
        ("Admin", "Control Planes", "direct"),
        ("Auditor", "Identity", f"team:{team['id']}"),
    }
    events = await api_runtime.pool.fetch(
        "SELECT DISTINCT tx_id FROM events WHERE stream_id = ANY($1::text[]) AND type <> ALL($2::text[])",
        [f"account-{account}", f"team-{team['id']}"],
        ["team.created", "team.role_assigned", "token.issued", "token.used"],
    )
    assert len(events) == 1, "the account, its roles and its membership are one append"


async def test_without_the_extension_the_answer_is_konnects(api: ApiClient) -> None:
    reply = await api.post("/v3/system-accounts", account_body())
    assert reply.status == 201, reply.body
    assert "assigned_roles" not in reply.body and "team_ids" not in reply.body
    empty = await api.post("/v3/system-accounts", account_body(assigned_roles=[], team_ids=[]))
    assert empty.status == 201, empty.body
    assert (empty.body["assigned_roles"], empty.body["team_ids"]) == ([], [])


async def test_bad_roles_or_teams_are_400_naming_them_and_write_nothing(
    api: ApiClient, api_runtime: Runtime
) -> None:
    org = await organization_id(api)
    team = await create_team(api)
    cases = [
        (account_body(assigned_roles=[role("Emperor", "Identity", org)]), "assigned_roles[0].role_name"),
        (account_body(assigned_roles=[role("Viewer", "Planets", org)]), "assigned_roles[0].entity_type_name"),
        (account_body(assigned_roles=[role("Viewer", "Identity", org)] * 2), "assigned_roles[1]"),
        (account_body(assigned_roles=[{"role_name": "Viewer"}]), "assigned_roles[0].entity_id"),
        (
            account_body(assigned_roles=[role("Viewer", "Identity", "not-a-uuid")]),
            "assigned_roles[0].entity_id",
        ),
        (
            account_body(assigned_roles=[role("Viewer", "Identity", MISSING_TEAM)]),
            "assigned_roles[0].entity_id",
        ),
        (account_body(team_ids=[team["id"], MISSING_TEAM]), "team_ids[1]"),
        (account_body(team_ids=[team["id"], team["id"]]), "team_ids[1]"),
        (account_body(team_ids=["not-a-uuid"]), "team_ids[0]"),
        (account_body(team_ids=[MISSING_TEAM] * 51), "team_ids"),
        (account_body(team_ids=None), "team_ids"),
        (account_body(assigned_roles={"role_name": "Viewer"}), "assigned_roles"),
    ]
    async with nothing_written(api_runtime):
        for body, field in cases:
            assert_problem(await api.post("/v3/system-accounts", body), 400, field)


async def test_roles_and_teams_the_caller_does_not_cover_are_403_and_write_nothing(
    api: ApiClient, api_runtime: Runtime
) -> None:
    org = await organization_id(api)
    _, admin_only = await account_with_roles(api, "Admin")
    auditors = await create_team(api)
    await grant_identity_role(api, f"/v3/teams/{auditors['id']}", "Auditor")
    name = unique("made")
    async with nothing_written(api_runtime):
        for body, missing in [
            (
                account_body(name=name, assigned_roles=[role("Auditor", "Identity", org)]),
                "Identity role Auditor",
            ),
            (
                account_body(name=name, assigned_roles=[role("Admin", "Control Planes", CONTROL_PLANE)]),
                f"Admin on Control Planes {CONTROL_PLANE}",
            ),
            (account_body(name=name, team_ids=[auditors["id"]]), "Identity role Auditor"),
        ]:
            reply = await api.post("/v3/system-accounts", body, token=admin_only)
            assert_problem(reply, 403)
            assert missing in reply.body["detail"], reply.body
    within = account_body(name=name, assigned_roles=[role("Admin", "Identity", org)])
    made = await api.post("/v3/system-accounts", within, token=admin_only)
    assert made.status == 201, "the refused requests claimed no name"
    assert [r["role_name"] for r in made.body["assigned_roles"]] == ["Admin"]


async def test_roles_and_teams_need_their_rights_besides_accounts_write(
    api: ApiClient, api_runtime: Runtime
) -> None:
    org = await organization_id(api)
    team = await create_team(api)
    _, accounts_only = await account_with_roles(api, "Admin", scopes=["accounts:write"])
    async with nothing_written(api_runtime):
        for body, right in [
            (account_body(assigned_roles=[role("Admin", "Identity", org)]), "roles:write"),
            (account_body(team_ids=[team["id"]]), "teams:write"),
        ]:
            reply = await api.post("/v3/system-accounts", body, token=accounts_only)
            assert_problem(reply, 403)
            assert f"needs the {right} right" in reply.body["detail"], reply.body
    assert (await api.post("/v3/system-accounts", account_body(), token=accounts_only)).status == 201


async def test_a_name_taken_refuses_the_roles_and_teams_too(api: ApiClient, api_runtime: Runtime) -> None:
    org = await organization_id(api)
    team = await create_team(api)
    taken = await api.post("/v3/system-accounts", account_body())
    assert taken.status == 201
    body = account_body(
        name=taken.body["name"], assigned_roles=[role("Viewer", "Identity", org)], team_ids=[team["id"]]
    )
    async with nothing_written(api_runtime):
        assert_problem(await api.post("/v3/system-accounts", body), 409)
    assert (await api.get(f"/v3/teams/{team['id']}/system-accounts")).body["data"] == []


async def test_a_retry_answers_as_the_first_time(api: ApiClient, api_runtime: Runtime) -> None:
    org = await organization_id(api)
    team = await create_team(api)
    body = account_body(assigned_roles=[role("Viewer", "Identity", org)], team_ids=[team["id"]])
    key = {"Idempotency-Key": unique("key")}
    first = await api.post("/v3/system-accounts", body, headers=key)
    assert first.status == 201, first.body
    async with nothing_written(api_runtime):
        again = await api.post("/v3/system-accounts", body, headers=key)
        assert (again.status, again.body) == (201, first.body)
        other = await api.post("/v3/system-accounts", {**body, "team_ids": []}, headers=key)
        assert_problem(other, 422)
    members = (await api.get(f"/v3/teams/{team['id']}/system-accounts")).body["data"]
    assert [m["id"] for m in members] == [first.body["id"]]
