"""System accounts as team members over real HTTP: add (201, no body; 409 when already a member),
remove, both listings (a team's accounts, an account's teams) with paging and name filters, and each
documented error (400 naming the body field, 401, 403, 404), plus the rules that keep membership
from raising rights and the cascade when an account is deleted."""

import asyncio
import uuid
from typing import Any

import pytest

from services.composition import Runtime
from tests.api.identity_support import (
    account_with_roles,
    assert_problem,
    create_account,
    create_team,
    grant_identity_role,
    nothing_written,
)
from tests.api_fixture import ApiClient, unique

ACCOUNT_FIELDS = {
    "id",
    "name",
    "description",
    "created_at",
    "updated_at",
    "konnect_managed",
    "enabled",
    "rotation_period_seconds",
    "expires_at",
}


def members_path(team_id: str) -> str:
    return f"/v3/teams/{team_id}/system-accounts"


async def add(api: ApiClient, team_id: str, account_id: str) -> None:
    reply = await api.post(members_path(team_id), {"id": account_id})
    assert reply.status == 201, reply.body


async def test_add_member_answers_201_without_body(api: ApiClient) -> None:
    team = await create_team(api)
    account = await create_account(api)
    reply = await api.post(members_path(team["id"]), {"id": account["id"]})
    assert reply.status == 201, reply.body
    assert reply.body is None
    members = await api.get(members_path(team["id"]))
    assert members.status == 200, members.body
    assert members.body["meta"] == {"page": {"number": 1, "size": 10, "total": 1}}
    [member] = members.body["data"]
    assert set(member) == ACCOUNT_FIELDS
    assert member == (await api.get(f"/v3/system-accounts/{account['id']}")).body
    teams = await api.get(f"/v3/system-accounts/{account['id']}/teams")
    assert teams.status == 200, teams.body
    assert teams.body["meta"] == {"page": {"number": 1, "size": 10, "total": 1}}
    assert teams.body["data"] == [(await api.get(f"/v3/teams/{team['id']}")).body]


async def test_adding_a_member_twice_is_a_conflict(api: ApiClient, api_runtime: Runtime) -> None:
    team = await create_team(api)
    account = await create_account(api)
    await add(api, team["id"], account["id"])
    async with nothing_written(api_runtime):
        again = await api.post(members_path(team["id"]), {"id": account["id"]})
    assert_problem(again, 409)
    assert (await api.get(members_path(team["id"]))).body["meta"]["page"]["total"] == 1


async def test_add_member_not_found(api: ApiClient, api_runtime: Runtime) -> None:
    team = await create_team(api)
    account = await create_account(api)
    async with nothing_written(api_runtime):
        unknown_account = await api.post(members_path(team["id"]), {"id": str(uuid.uuid4())})
        unknown_team = await api.post(members_path(str(uuid.uuid4())), {"id": account["id"]})
        malformed_team = await api.post(members_path("not-a-team"), {"id": account["id"]})
    assert_problem(unknown_account, 404)
    assert_problem(unknown_team, 404)
    assert_problem(malformed_team, 404)


async def test_a_deleted_team_or_account_cannot_gain_members(api: ApiClient) -> None:
    team = await create_team(api)
    account = await create_account(api)
    assert (await api.delete(f"/v3/system-accounts/{account['id']}")).status == 204
    assert_problem(await api.post(members_path(team["id"]), {"id": account["id"]}), 404)
    other = await create_account(api)
    assert (await api.delete(f"/v3/teams/{team['id']}")).status == 204
    assert_problem(await api.post(members_path(team["id"]), {"id": other["id"]}), 404)


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ({}, "id", "required"),
        ({"id": "not-a-uuid"}, "id", None),
        ({"id": 12}, "id", None),
        ({"id": None}, "id", None),
        ({"id": str(uuid.uuid4()), "role": "x"}, "role", "unknown_property"),
    ],
)
async def test_add_member_rejects_invalid_bodies(
    api: ApiClient, api_runtime: Runtime, body: dict[str, Any], field: str, rule: str | None
) -> None:
    team = await create_team(api)
    async with nothing_written(api_runtime):
        reply = await api.post(members_path(team["id"]), body)
    assert_problem(reply, 400, field, rule)


async def test_membership_changes_need_the_admin_role(api: ApiClient, api_runtime: Runtime) -> None:
    team = await create_team(api)
    account = await create_account(api)
    member = await create_account(api)
    await add(api, team["id"], member["id"])
    _, viewer = await account_with_roles(api, "Viewer")
    async with nothing_written(api_runtime):
        adding = await api.post(members_path(team["id"]), {"id": account["id"]}, token=viewer)
        removing = await api.delete(f"{members_path(team['id'])}/{member['id']}", token=viewer)
        anonymous = await api.post(members_path(team["id"]), {"id": account["id"]}, token="")
    assert_problem(adding, 403)
    assert_problem(removing, 403)
    assert_problem(anonymous, 401)
    listed = await api.get(members_path(team["id"]), token=viewer)
    assert [item["id"] for item in listed.body["data"]] == [member["id"]]


async def test_reading_memberships_needs_a_role(api: ApiClient) -> None:
    team = await create_team(api)
    account = await create_account(api)
    _, nobody = await account_with_roles(api)
    assert_problem(await api.get(members_path(team["id"]), token=nobody), 403)
    assert_problem(await api.get(f"/v3/system-accounts/{account['id']}/teams", token=nobody), 403)
    assert_problem(await api.get(members_path(team["id"]), token=""), 401)
    assert_problem(await api.get(f"/v3/system-accounts/{account['id']}/teams", token=""), 401)


async def test_remove_member(api: ApiClient) -> None:
    team = await create_team(api)
    stays, leaves = await create_account(api), await create_account(api)
    await add(api, team["id"], stays["id"])
    await add(api, team["id"], leaves["id"])
    removed = await api.delete(f"{members_path(team['id'])}/{leaves['id']}")
    assert removed.status == 204
    assert removed.body is None
    members = await api.get(members_path(team["id"]))
    assert [item["id"] for item in members.body["data"]] == [stays["id"]]
    assert (await api.get(f"/v3/system-accounts/{leaves['id']}/teams")).body["data"] == []
    assert_problem(await api.delete(f"{members_path(team['id'])}/{leaves['id']}"), 404)
    await add(api, team["id"], leaves["id"])  # a former member may join again


async def test_remove_member_not_found(api: ApiClient, api_runtime: Runtime) -> None:
    team = await create_team(api)
    account = await create_account(api)
    async with nothing_written(api_runtime):
        not_member = await api.delete(f"{members_path(team['id'])}/{account['id']}")
        unknown_team = await api.delete(f"{members_path(str(uuid.uuid4()))}/{account['id']}")
        malformed_team = await api.delete(f"{members_path('nope')}/{account['id']}")
        malformed_account = await api.delete(f"{members_path(team['id'])}/nope")
    for reply in (not_member, unknown_team, malformed_team, malformed_account):
        assert_problem(reply, 404)


async def test_list_members_pages_and_filters_by_name(api: ApiClient) -> None:
    team = await create_team(api)
    prefix = unique("member")
    accounts = []
    for n in range(3):
        reply = await api.post("/v3/system-accounts", {"name": f"{prefix}-{n}", "description": "d"})
        assert reply.status == 201
        accounts.append(reply.body)
        await add(api, team["id"], reply.body["id"])
    first = await api.get(f"{members_path(team['id'])}?page[size]=2")
    assert first.body["meta"] == {"page": {"number": 1, "size": 2, "total": 3}}
    second = await api.get(f"{members_path(team['id'])}?page[size]=2&page[number]=2")
    assert second.body["meta"] == {"page": {"number": 2, "size": 2, "total": 3}}
    paged = {item["id"] for item in first.body["data"] + second.body["data"]}
    assert paged == {account["id"] for account in accounts}
    exact = await api.get(f"{members_path(team['id'])}?filter[name][eq]={prefix}-1")
    assert [item["id"] for item in exact.body["data"]] == [accounts[1]["id"]]
    containing = await api.get(f"{members_path(team['id'])}?filter[name][contains]={prefix}")
    assert containing.body["meta"]["page"]["total"] == 3


async def test_list_account_teams_pages_and_filters_by_name(api: ApiClient) -> None:
    account = await create_account(api)
    prefix = unique("squad")
    teams = [await create_team(api, name=f"{prefix}-{n}") for n in range(3)]
    for team in teams:
        await add(api, team["id"], account["id"])
    path = f"/v3/system-accounts/{account['id']}/teams"
    first = await api.get(f"{path}?page[size]=2")
    assert first.body["meta"] == {"page": {"number": 1, "size": 2, "total": 3}}
    second = await api.get(f"{path}?page[size]=2&page[number]=2")
    paged = {item["id"] for item in first.body["data"] + second.body["data"]}
    assert paged == {team["id"] for team in teams}
    exact = await api.get(f"{path}?filter[name][eq]={prefix}-2")
    assert [item["id"] for item in exact.body["data"]] == [teams[2]["id"]]
    containing = await api.get(f"{path}?filter[name][contains]={prefix}")
    assert containing.body["meta"]["page"]["total"] == 3


@pytest.mark.parametrize(
    "query", ["filter[name][startswith]=x", "filter[labels.env][eq]=x", "page[size]=0", "sort=name"]
)
async def test_membership_lists_reject_unsupported_parameters(api: ApiClient, query: str) -> None:
    team = await create_team(api)
    account = await create_account(api)
    parameter = query.split("=")[0]
    assert_problem(await api.get(f"{members_path(team['id'])}?{query}"), 400, parameter)
    assert_problem(await api.get(f"/v3/system-accounts/{account['id']}/teams?{query}"), 400, parameter)


async def test_membership_lists_not_found(api: ApiClient) -> None:
    assert_problem(await api.get(members_path(str(uuid.uuid4()))), 404)
    assert_problem(await api.get(members_path("not-a-uuid")), 404)
    assert_problem(await api.get(f"/v3/system-accounts/{uuid.uuid4()}/teams"), 404)
    assert_problem(await api.get("/v3/system-accounts/not-a-uuid/teams"), 404)


async def test_an_account_cannot_change_its_own_memberships(api: ApiClient, api_runtime: Runtime) -> None:
    team = await create_team(api)
    admin_id, admin = await account_with_roles(api, "Admin")
    async with nothing_written(api_runtime):
        joining = await api.post(members_path(team["id"]), {"id": admin_id}, token=admin)
    assert_problem(joining, 403)
    await add(api, team["id"], admin_id)
    async with nothing_written(api_runtime):
        leaving = await api.delete(f"{members_path(team['id'])}/{admin_id}", token=admin)
    assert_problem(leaving, 403)


async def test_adding_to_a_team_grants_only_roles_the_actor_holds(
    api: ApiClient, api_runtime: Runtime
) -> None:
    """Joining a team confers its roles, so it is granting them: an Admin without the Introspector
    role cannot put an account into a team that holds it, but can into one holding Admin."""
    introspectors = await create_team(api)
    await grant_identity_role(api, f"/v3/teams/{introspectors['id']}", "Introspector")
    admins = await create_team(api)
    await grant_identity_role(api, f"/v3/teams/{admins['id']}", "Admin")
    _, admin = await account_with_roles(api, "Admin")
    account = await create_account(api)
    async with nothing_written(api_runtime):
        denied = await api.post(members_path(introspectors["id"]), {"id": account["id"]}, token=admin)
    assert_problem(denied, 403)
    allowed = await api.post(members_path(admins["id"]), {"id": account["id"]}, token=admin)
    assert allowed.status == 201, allowed.body


async def test_deleting_an_account_ends_its_memberships(api: ApiClient) -> None:
    team = await create_team(api)
    stays, deleted = await create_account(api), await create_account(api)
    await add(api, team["id"], stays["id"])
    await add(api, team["id"], deleted["id"])
    assert (await api.delete(f"/v3/system-accounts/{deleted['id']}")).status == 204
    members = await api.get(members_path(team["id"]))
    assert [item["id"] for item in members.body["data"]] == [stays["id"]]
    assert_problem(await api.get(f"/v3/system-accounts/{deleted['id']}/teams"), 404)
    assert_problem(await api.delete(f"{members_path(team['id'])}/{deleted['id']}"), 404)


async def test_concurrent_adds_make_one_membership(api: ApiClient) -> None:
    team = await create_team(api)
    account = await create_account(api)
    replies = await asyncio.gather(
        *(api.post(members_path(team["id"]), {"id": account["id"]}) for _ in range(4))
    )
    assert sorted(reply.status for reply in replies) == [201, 409, 409, 409]
    assert (await api.get(members_path(team["id"]))).body["meta"]["page"]["total"] == 1


async def test_membership_lists_show_current_accounts_and_teams(api: ApiClient) -> None:
    team = await create_team(api)
    account = await create_account(api)
    await add(api, team["id"], account["id"])
    renamed = await api.patch(
        f"/v3/system-accounts/{account['id']}", {"name": unique("renamed"), "enabled": False}
    )
    assert renamed.status == 200, renamed.body
    assert (await api.get(members_path(team["id"]))).body["data"] == [renamed.body]
    renamed_team = await api.patch(f"/v3/teams/{team['id']}", {"name": unique("renamed-team")})
    assert renamed_team.status == 200, renamed_team.body
    assert (await api.get(f"/v3/system-accounts/{account['id']}/teams")).body["data"] == [renamed_team.body]
