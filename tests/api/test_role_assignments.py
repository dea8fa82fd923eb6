"""Role assignments of system accounts and teams over real HTTP: assign (201; 409 for a duplicate;
400 naming the field for unknown roles, entity types, regions, malformed ids), get, list with the
spec's filters, unassign (204, then 404), each documented error, the rules that stop anyone granting
a role they do not hold, and rights inherited through teams."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from services.composition import Runtime
from services.roles.catalogue import IDENTITY_ROLES
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
from tests.api_fixture import ApiClient

ASSIGNED_ROLE_FIELDS = {"id", "role_name", "entity_id", "entity_type_name", "entity_region"}

MakeHolder = Callable[[ApiClient], Awaitable[str]]


async def account_holder(api: ApiClient) -> str:
    return f"/v3/system-accounts/{(await create_account(api))['id']}"


async def team_holder(api: ApiClient) -> str:
    return f"/v3/teams/{(await create_team(api))['id']}"


HOLDERS = pytest.mark.parametrize("make_holder", [account_holder, team_holder], ids=["account", "team"])


async def assign(
    api: ApiClient, holder: str, body: dict[str, str], token: str | None = None
) -> dict[str, Any]:
    reply = await api.post(f"{holder}/assigned-roles", body, token=token)
    assert reply.status == 201, reply.body
    assigned: dict[str, Any] = reply.body
    return assigned


def control_plane_viewer(region: str = "us") -> dict[str, str]:
    return role("Viewer", "Control Planes", str(uuid.uuid4()), region)


@HOLDERS
async def test_assign_get_list_unassign(api: ApiClient, make_holder: MakeHolder) -> None:
    holder = await make_holder(api)
    body = control_plane_viewer("eu")
    created = await api.post(f"{holder}/assigned-roles", body)
    assert created.status == 201, created.body
    assert created.content_type == "application/json"
    assert set(created.body) == ASSIGNED_ROLE_FIELDS
    uuid.UUID(created.body["id"])
    assert {k: v for k, v in created.body.items() if k != "id"} == body
    path = f"{holder}/assigned-roles/{created.body['id']}"
    fetched = await api.get(path)
    assert fetched.status == 200, fetched.body
    assert fetched.body == created.body
    listed = await api.get(f"{holder}/assigned-roles")
    assert listed.status == 200, listed.body
    assert listed.body == {"meta": {"page": {"number": 1, "size": 10, "total": 1}}, "data": [created.body]}
    removed = await api.delete(path)
    assert removed.status == 204
    assert removed.body is None
    assert_problem(await api.get(path), 404)
    assert_problem(await api.delete(path), 404)
    assert (await api.get(f"{holder}/assigned-roles")).body["data"] == []


@HOLDERS
async def test_identity_role_on_the_organization(api: ApiClient, make_holder: MakeHolder) -> None:
    holder = await make_holder(api)
    org = await organization_id(api)
    assigned = await assign(api, holder, role("Viewer", "Identity", org))
    assert assigned["entity_id"] == org
    assert assigned["entity_type_name"] == "Identity"


@HOLDERS
async def test_duplicate_assignment_is_a_conflict(
    api: ApiClient, api_runtime: Runtime, make_holder: MakeHolder
) -> None:
    holder = await make_holder(api)
    body = control_plane_viewer()
    await assign(api, holder, body)
    async with nothing_written(api_runtime):
        again = await api.post(f"{holder}/assigned-roles", body)
    assert_problem(again, 409)
    await assign(api, holder, {**body, "entity_region": "eu"})  # another region is another grant
    await assign(api, holder, {**body, "role_name": "Admin"})
    assert (await api.get(f"{holder}/assigned-roles")).body["meta"]["page"]["total"] == 3


@HOLDERS
async def test_a_role_may_be_assigned_again_after_unassigning(
    api: ApiClient, make_holder: MakeHolder
) -> None:
    holder = await make_holder(api)
    body = control_plane_viewer()
    first = await assign(api, holder, body)
    assert (await api.delete(f"{holder}/assigned-roles/{first['id']}")).status == 204
    second = await assign(api, holder, body)
    assert second["id"] != first["id"]


@HOLDERS
async def test_mesh_control_planes_is_accepted_in_both_spellings(
    api: ApiClient, make_holder: MakeHolder
) -> None:
    holder = await make_holder(api)
    entity = str(uuid.uuid4())
    spec_spelling = await assign(api, holder, role("Connector", "Mesh Control Planes", entity))
    catalogue_spelling = await assign(api, holder, role("Viewer", "Mesh Control Plane", entity))
    assert spec_spelling["entity_type_name"] == "Mesh Control Planes"
    assert catalogue_spelling["entity_type_name"] == "Mesh Control Plane"


INVALID_ASSIGNMENTS = [
    ({**control_plane_viewer(), "role_name": "Overlord"}, "role_name", "enum"),
    ({**control_plane_viewer(), "role_name": "Introspector"}, "role_name", "enum"),
    ({**control_plane_viewer(), "entity_type_name": "Spaceships"}, "entity_type_name", "enum"),
    ({**control_plane_viewer(), "entity_id": "not-a-uuid"}, "entity_id", None),
    ({**control_plane_viewer(), "entity_id": 42}, "entity_id", None),
    ({**control_plane_viewer(), "entity_region": "mars"}, "entity_region", "enum"),
    ({**control_plane_viewer(), "role_name": "R" * 256}, "role_name", "max_length"),
    ({**control_plane_viewer(), "role_name": 3}, "role_name", "is_string"),
    ({**control_plane_viewer(), "role_name": None}, "role_name", None),
    ({**control_plane_viewer(), "scope": "x"}, "scope", "unknown_property"),
    ({k: v for k, v in control_plane_viewer().items() if k != "role_name"}, "role_name", "required"),
    ({k: v for k, v in control_plane_viewer().items() if k != "entity_id"}, "entity_id", "required"),
    (
        {k: v for k, v in control_plane_viewer().items() if k != "entity_type_name"},
        "entity_type_name",
        "required",
    ),
    ({k: v for k, v in control_plane_viewer().items() if k != "entity_region"}, "entity_region", "required"),
    (role("Viewer", "Identity", str(uuid.uuid4())), "entity_id", None),
]


@HOLDERS
@pytest.mark.parametrize(("body", "field", "rule"), INVALID_ASSIGNMENTS)
async def test_assign_rejects_invalid_bodies(
    api: ApiClient,
    api_runtime: Runtime,
    make_holder: MakeHolder,
    body: dict[str, Any],
    field: str,
    rule: str | None,
) -> None:
    holder = await make_holder(api)
    async with nothing_written(api_runtime):
        reply = await api.post(f"{holder}/assigned-roles", body)
    assert_problem(reply, 400, field, rule)
    assert (await api.get(f"{holder}/assigned-roles")).body["data"] == []


async def test_account_role_paths_not_found(api: ApiClient, api_runtime: Runtime) -> None:
    """The System Accounts family types its ids as plain strings: malformed ids are 404s."""
    holder = await account_holder(api)
    assigned = await assign(api, holder, control_plane_viewer())
    unknown = f"/v3/system-accounts/{uuid.uuid4()}"
    async with nothing_written(api_runtime):
        for reply in [
            await api.post(f"{unknown}/assigned-roles", control_plane_viewer()),
            await api.post("/v3/system-accounts/nope/assigned-roles", control_plane_viewer()),
            await api.get(f"{unknown}/assigned-roles"),
            await api.get("/v3/system-accounts/nope/assigned-roles"),
            await api.get(f"{unknown}/assigned-roles/{assigned['id']}"),
            await api.get(f"{holder}/assigned-roles/{uuid.uuid4()}"),
            await api.get(f"{holder}/assigned-roles/nope"),
            await api.delete(f"{unknown}/assigned-roles/{assigned['id']}"),
            await api.delete(f"{holder}/assigned-roles/{uuid.uuid4()}"),
            await api.delete(f"{holder}/assigned-roles/nope"),
        ]:
            assert_problem(reply, 404)


async def test_team_role_paths_errors(api: ApiClient, api_runtime: Runtime) -> None:
    """The Teams family types its ids as ``format: uuid``: malformed ids are 400s naming them."""
    holder = await team_holder(api)
    assigned = await assign(api, holder, control_plane_viewer())
    unknown = f"/v3/teams/{uuid.uuid4()}"
    async with nothing_written(api_runtime):
        for reply in [
            await api.post(f"{unknown}/assigned-roles", control_plane_viewer()),
            await api.get(f"{unknown}/assigned-roles"),
            await api.get(f"{unknown}/assigned-roles/{assigned['id']}"),
            await api.get(f"{holder}/assigned-roles/{uuid.uuid4()}"),
            await api.delete(f"{unknown}/assigned-roles/{assigned['id']}"),
            await api.delete(f"{holder}/assigned-roles/{uuid.uuid4()}"),
        ]:
            assert_problem(reply, 404)
        assert_problem(
            await api.post("/v3/teams/x/assigned-roles", control_plane_viewer()), 400, "teamId", "is_uuid"
        )
        assert_problem(await api.get("/v3/teams/x/assigned-roles"), 400, "teamId", "is_uuid")
        assert_problem(await api.get(f"{holder}/assigned-roles/x"), 400, "roleId", "is_uuid")
        assert_problem(await api.delete(f"{holder}/assigned-roles/x"), 400, "roleId", "is_uuid")


async def test_a_role_of_one_holder_is_not_found_under_another(api: ApiClient) -> None:
    holder, other = await account_holder(api), await account_holder(api)
    assigned = await assign(api, holder, control_plane_viewer())
    assert_problem(await api.get(f"{other}/assigned-roles/{assigned['id']}"), 404)
    assert_problem(await api.delete(f"{other}/assigned-roles/{assigned['id']}"), 404)
    team = await team_holder(api)
    assert_problem(await api.get(f"{team}/assigned-roles/{assigned['id']}"), 404)


async def test_deleted_holders_lose_their_roles_and_tokens(api: ApiClient, api_runtime: Runtime) -> None:
    account, team = await account_holder(api), await team_holder(api)
    await assign(api, account, control_plane_viewer())
    await grant_identity_role(api, account, "Viewer")
    await assign(api, team, control_plane_viewer())
    token = await issue_token(api, account.rsplit("/", 1)[1])
    assert (await api.get("/v3/teams", token=token)).status == 200
    assert (await api.delete(account)).status == 204
    assert_problem(await api.get("/v3/teams", token=token), 401)
    assert (await api.delete(team)).status == 204
    assert_problem(await api.get(f"{account}/assigned-roles"), 404)
    assert_problem(await api.get(f"{team}/assigned-roles"), 404)
    assert_problem(await api.post(f"{account}/assigned-roles", control_plane_viewer()), 404)
    assert_problem(await api.post(f"{team}/assigned-roles", control_plane_viewer()), 404)
    remaining = await api_runtime.pool.fetchval(
        "SELECT count(*) FROM rm_role_assignments WHERE holder_id = ANY($1::uuid[])",
        [account.rsplit("/", 1)[1], team.rsplit("/", 1)[1]],
    )
    assert remaining == 0


async def test_konnect_managed_accounts_roles_cannot_be_changed(api: ApiClient, api_runtime: Runtime) -> None:
    managed = await managed_account(api, api_runtime)
    async with nothing_written(api_runtime):
        reply = await api.post(f"/v3/system-accounts/{managed['id']}/assigned-roles", control_plane_viewer())
    assert_problem(reply, 403)


async def test_account_roles_filters(api: ApiClient) -> None:
    holder = await account_holder(api)
    org = await organization_id(api)
    cp_viewer = await assign(api, holder, control_plane_viewer())
    cp_admin = await assign(api, holder, role("Admin", "Control Planes", cp_viewer["entity_id"], "us"))
    identity_viewer = await assign(api, holder, role("Viewer", "Identity", org))

    async def ids(query: str) -> list[str]:
        reply = await api.get(f"{holder}/assigned-roles?{query}")
        assert reply.status == 200, reply.body
        assert reply.body["meta"]["page"]["total"] == len(reply.body["data"])
        return [item["id"] for item in reply.body["data"]]

    assert await ids("filter[role_name][eq]=Viewer") == [cp_viewer["id"], identity_viewer["id"]]
    assert await ids("filter[role_name]=Admin") == [cp_admin["id"]]
    assert await ids("filter[entity_type_name][eq]=Identity") == [identity_viewer["id"]]
    assert await ids("filter[entity_type_name]=Control%20Planes") == [cp_viewer["id"], cp_admin["id"]]
    assert await ids(f"filter[entity_id][eq]={org}") == [identity_viewer["id"]]
    assert await ids(f"filter[entity_id]={cp_viewer['entity_id']}") == [cp_viewer["id"], cp_admin["id"]]
    both = "filter[role_name][eq]=Viewer&filter[entity_type_name][eq]=Control%20Planes"
    assert await ids(both) == [cp_viewer["id"]]
    assert await ids("filter[role_name][eq]=Nobody") == []


async def test_team_roles_filters(api: ApiClient) -> None:
    holder = await team_holder(api)
    cp_viewer = await assign(api, holder, control_plane_viewer())
    dashboards_viewer = await assign(api, holder, role("Viewer", "Dashboards", str(uuid.uuid4())))
    cp_admin = await assign(api, holder, role("Admin", "Control Planes", str(uuid.uuid4())))

    async def ids(query: str) -> list[str]:
        reply = await api.get(f"{holder}/assigned-roles?{query}")
        assert reply.status == 200, reply.body
        return [item["id"] for item in reply.body["data"]]

    assert await ids("filter[role_name][eq]=Viewer") == [cp_viewer["id"], dashboards_viewer["id"]]
    assert await ids("filter[entity_type_name]=Control%20Planes") == [cp_viewer["id"], cp_admin["id"]]
    assert await ids("filter[entity_type_name][eq]=Dashboards&filter[role_name]=Viewer") == [
        dashboards_viewer["id"]
    ]


@pytest.mark.parametrize(
    ("make_holder", "query"),
    [
        (account_holder, "filter[role_name][contains]=View"),
        (account_holder, "filter[entity_region][eq]=us"),
        (account_holder, "page[size]=0"),
        (account_holder, "page[size]=101"),
        (account_holder, "page[number]=0"),
        (account_holder, "page[number]=one"),
        (account_holder, "sort=role_name"),
        (team_holder, "filter[entity_id][eq]=00000000-0000-0000-0000-000000000000"),
        (team_holder, "filter[role_name][contains]=View"),
        (team_holder, "page[size]=-5"),
        (team_holder, "page[number]=1000001"),
    ],
)
async def test_role_lists_reject_unsupported_parameters(
    api: ApiClient, make_holder: MakeHolder, query: str
) -> None:
    holder = await make_holder(api)
    assert_problem(await api.get(f"{holder}/assigned-roles?{query}"), 400, query.split("=")[0])


@HOLDERS
async def test_role_lists_page_like_the_other_lists(api: ApiClient, make_holder: MakeHolder) -> None:
    """page[size] (default 10, at most 100) and page[number] (from 1), in the order of assignment;
    meta.page reports the page asked for and the total, filters apply before paging."""
    holder = await make_holder(api)
    made = [(await assign(api, holder, control_plane_viewer()))["id"] for _ in range(12)]
    first = await api.get(f"{holder}/assigned-roles")
    assert first.body["meta"]["page"] == {"number": 1, "size": 10, "total": 12}
    assert [r["id"] for r in first.body["data"]] == made[:10]
    second = await api.get(f"{holder}/assigned-roles?page[number]=2")
    assert second.body["meta"]["page"] == {"number": 2, "size": 10, "total": 12}
    assert [r["id"] for r in second.body["data"]] == made[10:]
    small = await api.get(f"{holder}/assigned-roles?page[size]=5&page[number]=3")
    assert small.body["meta"]["page"] == {"number": 3, "size": 5, "total": 12}
    assert [r["id"] for r in small.body["data"]] == made[10:]
    beyond = await api.get(f"{holder}/assigned-roles?page[size]=5&page[number]=4")
    assert beyond.body == {"meta": {"page": {"number": 4, "size": 5, "total": 12}}, "data": []}
    whole = await api.get(f"{holder}/assigned-roles?page[size]=100&page[number]=")
    assert [r["id"] for r in whole.body["data"]] == made
    filtered = await api.get(f"{holder}/assigned-roles?filter[role_name]=Viewer&page[size]=4")
    assert filtered.body["meta"]["page"] == {"number": 1, "size": 4, "total": 12}
    assert [r["id"] for r in filtered.body["data"]] == made[:4]


@HOLDERS
async def test_role_changes_need_the_admin_role(
    api: ApiClient, api_runtime: Runtime, make_holder: MakeHolder
) -> None:
    holder = await make_holder(api)
    assigned = await assign(api, holder, control_plane_viewer())
    _, viewer = await account_with_roles(api, "Viewer")
    _, nobody = await account_with_roles(api)
    path = f"{holder}/assigned-roles/{assigned['id']}"
    async with nothing_written(api_runtime):
        assert_problem(await api.post(f"{holder}/assigned-roles", control_plane_viewer(), token=viewer), 403)
        assert_problem(await api.delete(path, token=viewer), 403)
        assert_problem(await api.post(f"{holder}/assigned-roles", control_plane_viewer(), token=""), 401)
        assert_problem(await api.delete(path, token=""), 401)
    assert (await api.get(path, token=viewer)).body == assigned
    assert (await api.get(f"{holder}/assigned-roles", token=viewer)).status == 200
    assert_problem(await api.get(path, token=nobody), 403)
    assert_problem(await api.get(f"{holder}/assigned-roles", token=nobody), 403)
    assert_problem(await api.get(path, token=""), 401)
    assert_problem(await api.get(f"{holder}/assigned-roles", token=""), 401)


@HOLDERS
async def test_no_one_grants_an_identity_role_they_do_not_hold(
    api: ApiClient, api_runtime: Runtime, make_holder: MakeHolder
) -> None:
    holder = await make_holder(api)
    org = await organization_id(api)
    _, admin = await account_with_roles(api, "Admin")
    async with nothing_written(api_runtime):
        for role_name in ("Introspector", "Auditor", "Viewer"):
            reply = await api.post(f"{holder}/assigned-roles", role(role_name, "Identity", org), token=admin)
            assert_problem(reply, 403)
    await assign(api, holder, role("Admin", "Identity", org), token=admin)
    # A role on another entity type is a right of every token of its holder (downstream services
    # honour it), so it too is granted only by those who hold it.
    viewer = control_plane_viewer()
    async with nothing_written(api_runtime):
        assert_problem(await api.post(f"{holder}/assigned-roles", viewer, token=admin), 403)
    admin_id = (await api.post("/v3/tokens/introspect", {"token": admin})).body["account_id"]
    await assign(api, f"/v3/system-accounts/{admin_id}", viewer)
    await assign(api, holder, viewer, token=admin)


async def test_a_scoped_token_grants_only_what_its_scopes_cover(api: ApiClient, api_runtime: Runtime) -> None:
    holder = await account_holder(api)
    org = await organization_id(api)
    _, scoped = await account_with_roles(api, "Admin", "Viewer", scopes=["identity:read", "identity:write"])
    async with nothing_written(api_runtime):
        admin_grant = await api.post(f"{holder}/assigned-roles", role("Admin", "Identity", org), token=scoped)
    assert_problem(admin_grant, 403)
    await assign(api, holder, role("Viewer", "Identity", org), token=scoped)


async def test_a_token_cannot_raise_its_own_accounts_rights(api: ApiClient, api_runtime: Runtime) -> None:
    org = await organization_id(api)
    viewer_id, viewer = await account_with_roles(api, "Viewer")
    admin_id, admin = await account_with_roles(api, "Admin")
    team = await create_team(api)
    await grant_identity_role(api, f"/v3/teams/{team['id']}", "Admin")
    async with nothing_written(api_runtime):
        for holder, token, role_name in [
            (f"/v3/system-accounts/{viewer_id}", viewer, "Admin"),
            (f"/v3/system-accounts/{admin_id}", admin, "Introspector"),
        ]:
            assert_problem(
                await api.post(f"{holder}/assigned-roles", role(role_name, "Identity", org), token=token), 403
            )
        joining = await api.post(f"/v3/teams/{team['id']}/system-accounts", {"id": viewer_id}, token=viewer)
        assert_problem(joining, 403)
    assert_problem(await api.post("/v3/teams", {"name": "still-viewer"}, token=viewer), 403)


async def test_rights_inherited_from_a_team_follow_membership(api: ApiClient) -> None:
    """An account with no role of its own reads identities while it is in a team holding Identity
    Viewer, and loses that the moment it leaves."""
    account = await create_account(api)
    token = await issue_token(api, account["id"])
    team = await create_team(api)
    await grant_identity_role(api, f"/v3/teams/{team['id']}", "Viewer")
    assert_problem(await api.get("/v3/teams", token=token), 403)
    assert (await api.post(f"/v3/teams/{team['id']}/system-accounts", {"id": account["id"]})).status == 201
    assert (await api.get("/v3/teams", token=token)).status == 200
    assert (await api.get(f"/v3/system-accounts/{account['id']}", token=token)).status == 200
    assert (await api.get(f"/v3/system-accounts/{account['id']}/assigned-roles", token=token)).body[
        "data"
    ] == []
    assert_problem(await api.post("/v3/teams", {"name": "viewer-cannot-write"}, token=token), 403)
    assert (await api.delete(f"/v3/teams/{team['id']}/system-accounts/{account['id']}")).status == 204
    assert_problem(await api.get("/v3/teams", token=token), 403)


async def test_rights_inherited_from_a_team_end_with_the_role_or_the_team(api: ApiClient) -> None:
    account = await create_account(api)
    token = await issue_token(api, account["id"])
    team = await create_team(api)
    viewer = await grant_identity_role(api, f"/v3/teams/{team['id']}", "Viewer")
    assert (await api.post(f"/v3/teams/{team['id']}/system-accounts", {"id": account["id"]})).status == 201
    assert (await api.get("/v3/teams", token=token)).status == 200
    assert (await api.delete(f"/v3/teams/{team['id']}/assigned-roles/{viewer['id']}")).status == 204
    assert_problem(await api.get("/v3/teams", token=token), 403)
    await grant_identity_role(api, f"/v3/teams/{team['id']}", "Viewer")
    assert (await api.get("/v3/teams", token=token)).status == 200
    assert (await api.delete(f"/v3/teams/{team['id']}")).status == 204
    assert_problem(await api.get("/v3/teams", token=token), 403)


async def test_direct_rights_end_with_the_assignment(api: ApiClient) -> None:
    account_id, token = await account_with_roles(api, "Viewer")
    assert (await api.get("/v3/teams", token=token)).status == 200
    [viewer] = (await api.get(f"/v3/system-accounts/{account_id}/assigned-roles")).body["data"]
    assert (await api.delete(f"/v3/system-accounts/{account_id}/assigned-roles/{viewer['id']}")).status == 204
    assert_problem(await api.get("/v3/teams", token=token), 403)


async def test_roles_on_other_entities_confer_no_identity_rights(api: ApiClient) -> None:
    account = await create_account(api)
    await assign(
        api, f"/v3/system-accounts/{account['id']}", role("Admin", "Control Planes", str(uuid.uuid4()))
    )
    token = await issue_token(api, account["id"])
    assert_problem(await api.get("/v3/teams", token=token), 403)


@HOLDERS
async def test_concurrent_duplicates_store_one_assignment(api: ApiClient, make_holder: MakeHolder) -> None:
    holder = await make_holder(api)
    body = control_plane_viewer()
    replies = await asyncio.gather(*(api.post(f"{holder}/assigned-roles", body) for _ in range(4)))
    assert sorted(reply.status for reply in replies) == [201, 409, 409, 409]
    assert (await api.get(f"{holder}/assigned-roles")).body["meta"]["page"]["total"] == 1


async def test_entity_ids_are_uuids_in_any_case(api: ApiClient) -> None:
    holder = await account_holder(api)
    entity_id = str(uuid.uuid4())
    assigned = await assign(api, holder, role("Viewer", "Dashboards", entity_id.upper()))
    assert assigned["entity_id"] == entity_id
    assert_problem(await api.post(f"{holder}/assigned-roles", role("Viewer", "Dashboards", entity_id)), 409)
    found = await api.get(f"{holder}/assigned-roles?filter[entity_id][eq]={entity_id.upper()}")
    assert [item["id"] for item in found.body["data"]] == [assigned["id"]]
    nothing = await api.get(f"{holder}/assigned-roles?filter[entity_id][eq]=not-a-uuid")
    assert nothing.status == 200
    assert nothing.body["data"] == []


@HOLDERS
async def test_an_unknown_identity_role_is_a_400_whoever_asks(
    api: ApiClient, api_runtime: Runtime, make_holder: MakeHolder
) -> None:
    """The catalogue is checked before the cover rule: a caller who could not grant such a role is
    told that it does not exist (400 naming role_name, as Konnect declares), not that it lacks it."""
    holder = await make_holder(api)
    org = await organization_id(api)
    _, admin = await account_with_roles(api, "Admin")
    async with nothing_written(api_runtime):
        for role_name in ("Overlord", "admin", "Organization Admin"):
            reply = await api.post(f"{holder}/assigned-roles", role(role_name, "Identity", org), token=admin)
            assert_problem(reply, 400, "role_name", "enum")
            assert set(reply.body["invalid_parameters"][0]["choices"]) == set(IDENTITY_ROLES)
