"""/v3/system-accounts over real HTTP: every operation's happy path and documented errors."""

from typing import Any

import pytest

from services.composition import Runtime
from tests.api.helpers import assert_problem, in_days, issue_token, log_head, new_account
from tests.api.identity_support import managed_account
from tests.api_fixture import ApiClient, unique

MISSING = "00000000-0000-4000-8000-000000000000"


async def test_create_returns_the_account(api: ApiClient) -> None:
    name = unique("create")
    reply = await api.post(
        "/v3/system-accounts", {"name": name, "description": "d", "konnect_managed": False}
    )
    assert reply.status == 201
    assert reply.body["name"] == name
    assert reply.body["description"] == "d"
    assert reply.body["konnect_managed"] is False
    assert reply.body["enabled"] is True
    assert set(reply.body) >= {"id", "created_at", "updated_at"}


async def test_duplicate_name_is_409_and_writes_nothing(api: ApiClient, api_runtime: Runtime) -> None:
    account = await new_account(api)
    head = await log_head(api_runtime)
    reply = await api.post("/v3/system-accounts", {"name": account["name"], "description": "again"})
    assert_problem(reply, 409)
    assert await log_head(api_runtime) == head


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"description": "no name"}, "name"),
        ({"name": "", "description": "x"}, "name"),
        ({"name": "x" * 256, "description": "x"}, "name"),
        ({"name": 5, "description": "x"}, "name"),
        ({"name": "ok", "description": "x", "colour": "red"}, "colour"),
        ({"name": "ok", "description": "x", "konnect_managed": "yes"}, "konnect_managed"),
    ],
)
async def test_bad_body_is_400_naming_the_field_and_writes_nothing(
    api: ApiClient, api_runtime: Runtime, body: dict[str, Any], field: str
) -> None:
    head = await log_head(api_runtime)
    reply = await api.post("/v3/system-accounts", body)
    assert_problem(reply, 400, field)
    assert await log_head(api_runtime) == head


async def test_malformed_json_is_400(api: ApiClient, api_runtime: Runtime) -> None:
    head = await log_head(api_runtime)
    reply = await api.post("/v3/system-accounts", raw=b'{"name": ')
    assert_problem(reply, 400)
    assert await log_head(api_runtime) == head


async def test_get_and_list_with_filters_and_pages(api: ApiClient) -> None:
    prefix = unique("listing")
    created = [await new_account(api, prefix) for _ in range(3)]
    fetched = await api.get(f"/v3/system-accounts/{created[0]['id']}")
    assert fetched.status == 200 and fetched.body == created[0]

    page = await api.get(f"/v3/system-accounts?filter[name][contains]={prefix}&page[size]=2&page[number]=2")
    assert page.status == 200
    assert page.body["meta"]["page"] == {"number": 2, "size": 2, "total": 3}
    assert [a["id"] for a in page.body["data"]] == [created[2]["id"]]

    exact = await api.get(f"/v3/system-accounts?filter[name][eq]={created[1]['name']}")
    assert [a["id"] for a in exact.body["data"]] == [created[1]["id"]]
    managed = await api.get("/v3/system-accounts?filter[konnect_managed]=true&page[size]=100")
    assert all(a["konnect_managed"] for a in managed.body["data"]) and managed.body["data"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("filter[name][startswith]=x", "filter[name][startswith]"),
        ("filter[colour][eq]=x", "filter[colour][eq]"),
        ("page[size]=0", "page[size]"),
        ("page[number]=abc", "page[number]"),
        ("sort=name", "sort"),
    ],
)
async def test_unsupported_list_parameters_are_400_naming_them(
    api: ApiClient, query: str, field: str
) -> None:
    assert_problem(await api.get(f"/v3/system-accounts?{query}"), 400, field)


@pytest.mark.parametrize("account_id", [MISSING, "not-a-uuid"])
async def test_unknown_account_is_404(api: ApiClient, account_id: str) -> None:
    assert_problem(await api.get(f"/v3/system-accounts/{account_id}"), 404)
    assert_problem(await api.patch(f"/v3/system-accounts/{account_id}", {"name": unique("x")}), 404)
    assert_problem(await api.delete(f"/v3/system-accounts/{account_id}"), 404)


async def test_update_renames_and_frees_the_old_name(api: ApiClient) -> None:
    account = await new_account(api)
    new_name = unique("renamed")
    reply = await api.patch(f"/v3/system-accounts/{account['id']}", {"name": new_name, "description": "new"})
    assert reply.status == 200
    assert (reply.body["name"], reply.body["description"]) == (new_name, "new")
    assert (await api.get(f"/v3/system-accounts/{account['id']}")).body["name"] == new_name
    reused = await api.post("/v3/system-accounts", {"name": account["name"], "description": "reuse"})
    assert reused.status == 201


async def test_update_to_a_taken_name_is_409(api: ApiClient) -> None:
    first, second = await new_account(api), await new_account(api)
    assert_problem(await api.patch(f"/v3/system-accounts/{second['id']}", {"name": first["name"]}), 409)


async def test_managed_accounts_cannot_be_changed(api: ApiClient, api_runtime: Runtime) -> None:
    managed = await managed_account(api, api_runtime)
    head = await log_head(api_runtime)
    update = await api.patch(f"/v3/system-accounts/{managed['id']}", {"description": "changed"})
    assert update.status in (403, 409) and update.content_type == "application/problem+json"
    deletion = await api.delete(f"/v3/system-accounts/{managed['id']}")
    assert deletion.status in (403, 409) and deletion.content_type == "application/problem+json"
    assert await log_head(api_runtime) == head


async def test_delete_revokes_every_token_and_hides_the_account(api: ApiClient, api_runtime: Runtime) -> None:
    account = await new_account(api)
    issued = [await issue_token(api, account["id"]) for _ in range(3)]
    assert (await api.delete(f"/v3/system-accounts/{account['id']}")).status == 204
    assert_problem(await api.get(f"/v3/system-accounts/{account['id']}"), 404)
    reasons = await api_runtime.pool.fetch(
        "SELECT data->>'token_id' AS token_id, data->>'reason' AS reason FROM events"
        " WHERE type = 'token.revoked' AND data->>'account_id' = $1",
        account["id"],
    )
    assert sorted(r["token_id"] for r in reasons) == sorted(t["id"] for t in issued)
    assert {r["reason"] for r in reasons} == {"account_deleted"}
    for token in issued:
        assert (await api.get("/v3/system-accounts", token=token["token"])).status == 401
    assert (
        await api.post("/v3/system-accounts", {"name": account["name"], "description": "again"})
    ).status == 201


async def test_disable_stops_tokens_and_enable_restores_them(api: ApiClient, api_runtime: Runtime) -> None:
    from tests.api.helpers import account_with_token

    account, secret = await account_with_token(api, api_runtime, "Viewer")
    assert (await api.get("/v3/system-accounts", token=secret)).status == 200
    disabled = await api.patch(f"/v3/system-accounts/{account['id']}", {"enabled": False})
    assert disabled.status == 200 and disabled.body["enabled"] is False
    assert (await api.get("/v3/system-accounts", token=secret)).status == 401
    tokens = f"/v3/system-accounts/{account['id']}/access-tokens"
    refused = await api.post(tokens, {"name": unique("while-disabled"), "expires_at": in_days(1)})
    assert refused.status == 409 and "disabled" in refused.body["detail"]
    enabled = await api.patch(f"/v3/system-accounts/{account['id']}", {"enabled": True})
    assert enabled.status == 200 and enabled.body["enabled"] is True
    assert (await api.get("/v3/system-accounts", token=secret)).status == 200
    assert (await api.post(tokens, {"name": unique("enabled"), "expires_at": in_days(1)})).status == 201


async def test_rotation_period_is_set_shown_and_cleared(api: ApiClient) -> None:
    reply = await api.post(
        "/v3/system-accounts",
        {"name": unique("rotating"), "description": "", "rotation_period_seconds": 86400},
    )
    assert reply.status == 201 and reply.body["rotation_period_seconds"] == 86400
    path = f"/v3/system-accounts/{reply.body['id']}"
    assert (await api.get(path)).body["rotation_period_seconds"] == 86400
    renamed = await api.patch(path, {"description": "kept period"})
    assert renamed.body["rotation_period_seconds"] == 86400
    cleared = await api.patch(path, {"rotation_period_seconds": None})
    assert cleared.status == 200 and cleared.body["rotation_period_seconds"] is None
    assert (await api.get(path)).body["rotation_period_seconds"] is None


@pytest.mark.parametrize("field", ["name", "description", "enabled"])
async def test_null_for_a_non_nullable_field_is_400(api: ApiClient, api_runtime: Runtime, field: str) -> None:
    account = await new_account(api)
    head = await log_head(api_runtime)
    assert_problem(await api.patch(f"/v3/system-accounts/{account['id']}", {field: None}), 400, field)
    assert await log_head(api_runtime) == head
