"""/v3/teams over real HTTP: create, list (paging, name and label filters), get, update, delete,
and each error Konnect documents for them (400 naming the field or parameter, 403, 404)."""

import uuid
from typing import Any

import pytest

from services.composition import Runtime
from tests.api.identity_support import (
    account_with_roles,
    assert_problem,
    create_account,
    create_team,
    nothing_written,
)
from tests.api_fixture import ApiClient, unique

TEAM_FIELDS = {"id", "name", "description", "system_team", "labels", "created_at", "updated_at"}


def assert_team(body: dict[str, Any], name: str, description: str | None, labels: dict[str, str]) -> None:
    assert set(body) == TEAM_FIELDS, body
    uuid.UUID(body["id"])
    assert body["name"] == name
    assert body["description"] == description
    assert body["labels"] == labels
    assert body["system_team"] is False
    assert body["created_at"].endswith("Z") and body["updated_at"].endswith("Z")


async def test_create_then_get_team(api: ApiClient) -> None:
    name = unique("IDM - Developers")
    created = await api.post(
        "/v3/teams", {"name": name, "description": "The IDM team.", "labels": {"env": "test"}}
    )
    assert created.status == 201, created.body
    assert created.content_type == "application/json"
    assert_team(created.body, name, "The IDM team.", {"env": "test"})
    fetched = await api.get(f"/v3/teams/{created.body['id']}")
    assert fetched.status == 200
    assert fetched.body == created.body


async def test_create_team_with_only_a_name(api: ApiClient) -> None:
    name = unique("bare")
    created = await api.post("/v3/teams", {"name": name})
    assert created.status == 201, created.body
    assert_team(created.body, name, None, {})


async def test_a_team_without_description_reads_back_as_null(api: ApiClient) -> None:
    created = await create_team(api)
    fetched = await api.get(f"/v3/teams/{created['id']}")
    assert fetched.body["description"] is None
    listed = await api.get(f"/v3/teams?filter[name][eq]={created['name']}")
    assert listed.body["data"][0]["description"] is None


async def test_teams_may_share_a_name(api: ApiClient) -> None:
    name = unique("twin")
    first = await create_team(api, name=name, description="same")
    second = await create_team(api, name=name, description="same")
    assert first["id"] != second["id"]


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ({}, "name", "required"),
        ({"name": 42}, "name", "is_string"),
        ({"name": ""}, "name", "min_length"),
        ({"name": "x" * 251}, "name", "max_length"),
        ({"name": "ok", "description": ""}, "description", "min_length"),
        ({"name": "ok", "description": None}, "description", None),
        ({"name": "ok", "description": "d" * 251}, "description", "max_length"),
        ({"name": "ok", "nickname": "x"}, "nickname", "unknown_property"),
        ({"name": "ok", "labels": ["env"]}, "labels", "is_object"),
        ({"name": "ok", "labels": {"env": "not valid!"}}, "labels.env", "is_label"),
        ({"name": "ok", "labels": {"env": "v" * 64}}, "labels.env", None),
        ({"name": "ok", "labels": {"kong-env": "x"}}, "labels.kong-env", None),
        ({"name": "ok", "labels": {f"k{n}": "v" for n in range(51)}}, "labels", None),
        ({"name": "ok", "system_team": True}, "system_team", "unknown_property"),
    ],
)
async def test_create_team_rejects_invalid_bodies(
    api: ApiClient, api_runtime: Runtime, body: dict[str, Any], field: str, rule: str | None
) -> None:
    async with nothing_written(api_runtime):
        reply = await api.post("/v3/teams", body)
    assert_problem(reply, 400, field, rule)


async def test_create_team_rejects_malformed_json(api: ApiClient, api_runtime: Runtime) -> None:
    async with nothing_written(api_runtime):
        reply = await api.post("/v3/teams", raw=b'{"name": ')
    assert_problem(reply, 400)


async def test_creating_a_team_needs_the_admin_role(api: ApiClient, api_runtime: Runtime) -> None:
    _, viewer = await account_with_roles(api, "Viewer")
    _, nobody = await account_with_roles(api)
    async with nothing_written(api_runtime):
        as_viewer = await api.post("/v3/teams", {"name": unique("denied")}, token=viewer)
        as_nobody = await api.post("/v3/teams", {"name": unique("denied")}, token=nobody)
    assert_problem(as_viewer, 403)
    assert_problem(as_nobody, 403)


async def test_teams_need_a_valid_token(api: ApiClient) -> None:
    assert_problem(await api.get("/v3/teams", token=""), 401)
    assert_problem(await api.post("/v3/teams", {"name": "x"}, token="spat_not-a-real-token"), 401)


async def test_a_viewer_reads_teams_but_an_account_without_roles_does_not(api: ApiClient) -> None:
    team = await create_team(api)
    _, viewer = await account_with_roles(api, "Viewer")
    _, nobody = await account_with_roles(api)
    assert (await api.get(f"/v3/teams/{team['id']}", token=viewer)).status == 200
    assert (await api.get("/v3/teams", token=viewer)).status == 200
    assert_problem(await api.get(f"/v3/teams/{team['id']}", token=nobody), 403)
    assert_problem(await api.get("/v3/teams", token=nobody), 403)


async def test_list_teams_pages_and_counts(api: ApiClient) -> None:
    prefix = unique("paged")
    teams = [await create_team(api, name=f"{prefix}-{n}") for n in range(3)]
    first = await api.get(f"/v3/teams?filter[name][contains]={prefix}&page[size]=2")
    assert first.status == 200, first.body
    assert first.body["meta"] == {"page": {"number": 1, "size": 2, "total": 3}}
    second = await api.get(f"/v3/teams?filter[name][contains]={prefix}&page[size]=2&page[number]=2")
    assert second.body["meta"] == {"page": {"number": 2, "size": 2, "total": 3}}
    listed = [team["id"] for team in first.body["data"] + second.body["data"]]
    assert listed == [team["id"] for team in teams]
    assert all(set(item) == TEAM_FIELDS for item in first.body["data"])


async def test_list_teams_defaults_to_pages_of_ten(api: ApiClient) -> None:
    await create_team(api)
    reply = await api.get("/v3/teams")
    assert reply.status == 200
    assert reply.body["meta"]["page"]["number"] == 1
    assert reply.body["meta"]["page"]["size"] == 10
    assert reply.body["meta"]["page"]["total"] >= 1
    assert 1 <= len(reply.body["data"]) <= 10


async def test_list_teams_filters_by_exact_name(api: ApiClient) -> None:
    team = await create_team(api)
    await create_team(api, name=team["name"] + "-suffix")
    reply = await api.get(f"/v3/teams?filter[name][eq]={team['name']}")
    assert reply.status == 200, reply.body
    assert [item["id"] for item in reply.body["data"]] == [team["id"]]
    assert reply.body["meta"]["page"]["total"] == 1


async def test_list_teams_filters_by_label(api: ApiClient) -> None:
    value = uuid.uuid4().hex[:12]
    tagged = await create_team(api, labels={"env": value, "tier": "gold"})
    await create_team(api, labels={"env": value + "x"})
    by_value = await api.get(f"/v3/teams?filter[labels.env][eq]={value}")
    assert by_value.status == 200, by_value.body
    assert [item["id"] for item in by_value.body["data"]] == [tagged["id"]]
    containing = await api.get(f"/v3/teams?filter[labels.env][contains]={value}&page[size]=100")
    assert {item["id"] for item in containing.body["data"]} >= {tagged["id"]}
    assert containing.body["meta"]["page"]["total"] >= 2
    key = f"k{uuid.uuid4().hex[:8]}"
    keyed = await create_team(api, labels={key: "yes"})
    exists = await api.get(f"/v3/teams?filter[labels.{key}][exists]=true")
    assert [item["id"] for item in exists.body["data"]] == [keyed["id"]]


async def test_list_teams_name_filters_match_wildcards_literally(api: ApiClient) -> None:
    percent = await create_team(api, name=unique("50%_off"))
    await create_team(api, name=unique("5000xoff"))
    reply = await api.get("/v3/teams?filter[name][contains]=0%25_o&page[size]=100")
    assert reply.status == 200, reply.body
    assert [item["id"] for item in reply.body["data"]] == [percent["id"]]


async def test_list_teams_accepts_the_deep_object_label_spelling(api: ApiClient) -> None:
    key = f"k{uuid.uuid4().hex[:8]}"
    team = await create_team(api, labels={key: "blue"})
    reply = await api.get(f"/v3/teams?filter[labels][{key}][eq]=blue")
    assert reply.status == 200, reply.body
    assert [item["id"] for item in reply.body["data"]] == [team["id"]]


async def test_list_teams_past_the_last_page_is_empty(api: ApiClient) -> None:
    team = await create_team(api)
    reply = await api.get(f"/v3/teams?filter[name][eq]={team['name']}&page[number]=2")
    assert reply.status == 200, reply.body
    assert reply.body == {"meta": {"page": {"number": 2, "size": 10, "total": 1}}, "data": []}


@pytest.mark.parametrize(
    "query",
    [
        "filter[name][startswith]=x",
        "filter[description][eq]=x",
        "filter[labels.env][gt]=x",
        "page[size]=0",
        "page[size]=101",
        "page[number]=abc",
        "sort=name",
    ],
)
async def test_list_teams_rejects_unsupported_parameters(api: ApiClient, query: str) -> None:
    reply = await api.get(f"/v3/teams?{query}")
    assert_problem(reply, 400, query.split("=")[0])


async def test_get_team_errors(api: ApiClient) -> None:
    assert_problem(await api.get("/v3/teams/not-a-uuid"), 400, "teamId", "is_uuid")
    assert_problem(await api.get(f"/v3/teams/{uuid.uuid4()}"), 404)


async def test_update_team_changes_only_what_is_sent(api: ApiClient) -> None:
    team = await create_team(api, description="before", labels={"env": "dev", "tier": "gold"})
    new_name = unique("renamed")
    reply = await api.patch(f"/v3/teams/{team['id']}", {"name": new_name})
    assert reply.status == 200, reply.body
    assert_team(reply.body, new_name, "before", {"env": "dev", "tier": "gold"})
    assert reply.body["created_at"] == team["created_at"]
    assert reply.body["updated_at"] >= team["updated_at"]
    described = await api.patch(f"/v3/teams/{team['id']}", {"description": "after"})
    assert_team(described.body, new_name, "after", {"env": "dev", "tier": "gold"})
    fetched = await api.get(f"/v3/teams/{team['id']}")
    assert fetched.body == described.body


async def test_update_team_merges_labels_and_null_removes(api: ApiClient) -> None:
    team = await create_team(api, labels={"env": "dev", "tier": "gold"})
    merged = await api.patch(f"/v3/teams/{team['id']}", {"labels": {"env": "prod", "tier": None, "new": "x"}})
    assert merged.status == 200, merged.body
    assert merged.body["labels"] == {"env": "prod", "new": "x"}
    cleared = await api.patch(f"/v3/teams/{team['id']}", {"labels": None})
    assert cleared.status == 200, cleared.body
    assert cleared.body["labels"] == {}
    assert (await api.get(f"/v3/teams/{team['id']}")).body["labels"] == {}


async def test_update_team_with_the_same_values_is_a_no_op(api: ApiClient, api_runtime: Runtime) -> None:
    team = await create_team(api, description="same")
    async with nothing_written(api_runtime):
        reply = await api.patch(f"/v3/teams/{team['id']}", {"name": team["name"], "description": "same"})
    assert reply.status == 200, reply.body
    assert reply.body == team


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ({"name": None}, "name", None),
        ({"description": None}, "description", None),
        ({"name": 7}, "name", "is_string"),
        ({"name": ""}, "name", "min_length"),
        ({"description": "d" * 251}, "description", "max_length"),
        ({"labels": {"env": "bad value"}}, "labels.env", "is_label"),
        ({"labels": {"konnect-x": "v"}}, "labels.konnect-x", None),
        ({"id": str(uuid.uuid4())}, "id", "unknown_property"),
    ],
)
async def test_update_team_rejects_invalid_bodies(
    api: ApiClient, api_runtime: Runtime, body: dict[str, Any], field: str, rule: str | None
) -> None:
    team = await create_team(api, description="kept")
    async with nothing_written(api_runtime):
        reply = await api.patch(f"/v3/teams/{team['id']}", body)
    assert_problem(reply, 400, field, rule)
    assert (await api.get(f"/v3/teams/{team['id']}")).body == team


async def test_update_team_errors(api: ApiClient, api_runtime: Runtime) -> None:
    _, viewer = await account_with_roles(api, "Viewer")
    team = await create_team(api)
    async with nothing_written(api_runtime):
        assert_problem(await api.patch("/v3/teams/123", {"name": "x"}), 400, "teamId", "is_uuid")
        assert_problem(await api.patch(f"/v3/teams/{uuid.uuid4()}", {"name": "x"}), 404)
        assert_problem(await api.patch(f"/v3/teams/{team['id']}", {"name": "x"}, token=viewer), 403)


async def test_delete_team(api: ApiClient) -> None:
    team = await create_team(api)
    deleted = await api.delete(f"/v3/teams/{team['id']}")
    assert deleted.status == 204
    assert deleted.body is None
    assert_problem(await api.get(f"/v3/teams/{team['id']}"), 404)
    assert_problem(await api.delete(f"/v3/teams/{team['id']}"), 404)
    assert_problem(await api.patch(f"/v3/teams/{team['id']}", {"name": "x"}), 404)
    listed = await api.get(f"/v3/teams?filter[name][eq]={team['name']}")
    assert listed.body["data"] == []


async def test_delete_team_errors(api: ApiClient, api_runtime: Runtime) -> None:
    _, viewer = await account_with_roles(api, "Viewer")
    team = await create_team(api)
    async with nothing_written(api_runtime):
        assert_problem(await api.delete("/v3/teams/nope"), 400, "teamId", "is_uuid")
        assert_problem(await api.delete(f"/v3/teams/{uuid.uuid4()}"), 404)
        assert_problem(await api.delete(f"/v3/teams/{team['id']}", token=viewer), 403)
    assert (await api.get(f"/v3/teams/{team['id']}")).status == 200


async def test_deleting_a_team_ends_its_memberships(api: ApiClient) -> None:
    team = await create_team(api)
    account = await create_account(api)
    added = await api.post(f"/v3/teams/{team['id']}/system-accounts", {"id": account["id"]})
    assert added.status == 201
    assert (await api.delete(f"/v3/teams/{team['id']}")).status == 204
    teams_of_account = await api.get(f"/v3/system-accounts/{account['id']}/teams")
    assert teams_of_account.status == 200
    assert teams_of_account.body["data"] == []
    assert_problem(await api.get(f"/v3/teams/{team['id']}/system-accounts"), 404)
