"""/v3/system-accounts/{id}/access-tokens over real HTTP, with our /revoke and /rotate extensions."""

import asyncio
import re
from typing import Any

import pytest

from services.composition import Runtime
from tests.api.helpers import account_with_token, assert_problem, in_days, issue_token, log_head, new_account
from tests.api_fixture import ApiClient, unique

SECRET_FORMAT = re.compile(r"spat_[0-9A-Za-z]{50}")


def tokens_path(account_id: str) -> str:
    return f"/v3/system-accounts/{account_id}/access-tokens"


async def test_issue_shows_the_secret_once(api: ApiClient) -> None:
    account = await new_account(api)
    issued = await issue_token(api, account["id"])
    assert SECRET_FORMAT.fullmatch(issued["token"])
    assert issued["state"] == "ACTIVE"
    fetched = await api.get(f"{tokens_path(account['id'])}/{issued['id']}")
    assert fetched.status == 200
    assert "token" not in fetched.body
    assert {k: v for k, v in issued.items() if k != "token"} == fetched.body
    listed = await api.get(tokens_path(account["id"]))
    assert listed.body["meta"]["page"]["total"] == 1 and "token" not in listed.body["data"][0]


async def test_same_name_on_one_account_is_409_but_fine_on_another(api: ApiClient) -> None:
    first, second = await new_account(api), await new_account(api)
    issued = await issue_token(api, first["id"])
    again = await api.post(tokens_path(first["id"]), {"name": issued["name"], "expires_at": in_days(1)})
    assert_problem(again, 409)
    await issue_token(api, second["id"], name=issued["name"])


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"expires_at": None}, "expires_at"),
        ({"expires_at": in_days(400)}, "expires_at"),
        ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
        ({"expires_at": "tomorrow"}, "expires_at"),
        ({"expires_at": "2030-01-01T00:00:00"}, "expires_at"),
        ({"scopes": ["everything"]}, "scopes[0]"),
        ({"auto_extend_seconds": 0}, "auto_extend_seconds"),
        ({"max_expires_at": in_days(10)}, "max_expires_at"),
        ({"name": ""}, "name"),
        ({"secret": "spat_mine"}, "secret"),
    ],
)
async def test_bad_token_requests_are_400_naming_the_field(
    api: ApiClient, api_runtime: Runtime, fields: dict[str, Any], field: str
) -> None:
    account = await new_account(api)
    head = await log_head(api_runtime)
    body = {"name": unique("bad"), "expires_at": in_days(1), **fields}
    assert_problem(await api.post(tokens_path(account["id"]), body), 400, field)
    assert await log_head(api_runtime) == head


async def test_tokens_of_an_unknown_account_are_404(api: ApiClient) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    assert_problem(await api.get(tokens_path(missing)), 404)
    assert_problem(await api.post(tokens_path(missing), {"name": "x", "expires_at": in_days(1)}), 404)


async def test_unknown_token_is_404_on_every_operation(api: ApiClient) -> None:
    account = await new_account(api)
    other_account = await new_account(api)
    foreign = await issue_token(api, other_account["id"])
    for token_id in ("00000000-0000-4000-8000-000000000000", "nope", foreign["id"]):
        path = f"{tokens_path(account['id'])}/{token_id}"
        assert_problem(await api.get(path), 404)
        assert_problem(await api.patch(path, {"name": unique("n")}), 404)
        assert_problem(await api.delete(path), 404)
        assert_problem(await api.patch(path + "/revoke"), 404)
        assert_problem(await api.post(path + "/rotate", {}), 404)


async def test_rename(api: ApiClient) -> None:
    account = await new_account(api)
    issued = await issue_token(api, account["id"])
    taken = await issue_token(api, account["id"])
    path = f"{tokens_path(account['id'])}/{issued['id']}"
    renamed = await api.patch(path, {"name": "renamed"})
    assert renamed.status == 200 and renamed.body["name"] == "renamed"
    assert_problem(await api.patch(path, {"name": taken["name"]}), 409)
    assert_problem(await api.patch(path, {"expires_at": in_days(2)}), 400, "expires_at")


async def test_revoke_then_token_stops_working(api: ApiClient, api_runtime: Runtime) -> None:
    account, secret = await account_with_token(api, api_runtime, "Viewer")
    token_id = (await api.get(tokens_path(account["id"]))).body["data"][0]["id"]
    assert (await api.get("/v3/system-accounts", token=secret)).status == 200
    revoked = await api.patch(f"{tokens_path(account['id'])}/{token_id}/revoke")
    assert revoked.status == 200
    assert revoked.body["state"] == "REVOKED" and "revoked_at" in revoked.body
    assert (await api.get("/v3/system-accounts", token=secret)).status == 401
    again = await api.patch(f"{tokens_path(account['id'])}/{token_id}/revoke")
    assert again.status == 200 and again.body["revoked_at"] == revoked.body["revoked_at"]


async def test_delete_revokes_and_hides(api: ApiClient, api_runtime: Runtime) -> None:
    account, secret = await account_with_token(api, api_runtime, "Viewer")
    token_id = (await api.get(tokens_path(account["id"]))).body["data"][0]["id"]
    assert (await api.delete(f"{tokens_path(account['id'])}/{token_id}")).status == 204
    assert_problem(await api.get(f"{tokens_path(account['id'])}/{token_id}"), 404)
    assert (await api.get(tokens_path(account["id"]))).body["meta"]["page"]["total"] == 0
    assert (await api.get("/v3/system-accounts", token=secret)).status == 401


async def test_rotate_without_grace_retires_the_old_secret_at_once(
    api: ApiClient, api_runtime: Runtime
) -> None:
    account, old = await account_with_token(api, api_runtime, "Viewer")
    token_id = (await api.get(tokens_path(account["id"]))).body["data"][0]["id"]
    rotated = await api.post(f"{tokens_path(account['id'])}/{token_id}/rotate", {})
    assert rotated.status == 200 and rotated.body["id"] == token_id
    new = rotated.body["token"]
    assert SECRET_FORMAT.fullmatch(new) and new != old
    assert (await api.get("/v3/system-accounts", token=old)).status == 401
    assert (await api.get("/v3/system-accounts", token=new)).status == 200


async def test_rotate_with_grace_keeps_the_old_secret_until_it_ends(
    api: ApiClient, api_runtime: Runtime
) -> None:
    account, old = await account_with_token(api, api_runtime, "Viewer")
    token_id = (await api.get(tokens_path(account["id"]))).body["data"][0]["id"]
    path = f"{tokens_path(account['id'])}/{token_id}/rotate"
    rotated = await api.post(path, {"grace_period_seconds": 1})
    assert rotated.status == 200
    assert (await api.get("/v3/system-accounts", token=old)).status == 200
    assert (await api.get("/v3/system-accounts", token=rotated.body["token"])).status == 200
    await asyncio.sleep(1.2)
    assert (await api.get("/v3/system-accounts", token=old)).status == 401
    assert (await api.get("/v3/system-accounts", token=rotated.body["token"])).status == 200
    assert_problem(await api.post(path, {"grace_period_seconds": -1}), 400, "grace_period_seconds")


async def test_expired_token_reads_as_expired_and_is_rejected(api: ApiClient, api_runtime: Runtime) -> None:
    account, secret = await account_with_token(api, api_runtime, "Viewer", expires_at=in_days(1.2 / 86400))
    await asyncio.sleep(1.3)
    assert (await api.get("/v3/system-accounts", token=secret)).status == 401
    listed = await api.get(tokens_path(account["id"]))
    assert listed.body["data"][0]["state"] == "EXPIRED"


async def test_sliding_expiry_extends_on_use_but_not_past_the_ceiling(
    api: ApiClient, api_runtime: Runtime
) -> None:
    account = await new_account(api)
    from tests.api.helpers import grant_identity_role

    await grant_identity_role(api, api_runtime, account["id"], "Viewer")
    issued = await issue_token(
        api, account["id"], expires_at=in_days(1), auto_extend_seconds=3 * 86400, max_expires_at=in_days(2)
    )
    assert (await api.get("/v3/system-accounts", token=issued["token"])).status == 200
    path = f"{tokens_path(account['id'])}/{issued['id']}"
    for _ in range(50):
        fetched = await api.get(path)
        if fetched.body["expires_at"] != issued["expires_at"]:
            break
        await asyncio.sleep(0.1)
    assert fetched.body["expires_at"] == issued["max_expires_at"]
    assert "last_used_at" in fetched.body


async def test_revoke_records_the_reason_shows_it_and_keeps_the_first(
    api: ApiClient, api_runtime: Runtime
) -> None:
    account = await new_account(api)
    coded, texted, plain = [await issue_token(api, account["id"]) for _ in range(3)]
    path = tokens_path(account["id"])
    revoked = await api.patch(f"{path}/{coded['id']}/revoke", {"reason": "compromised"})
    assert revoked.status == 200 and revoked.body["revoke_reason"] == "compromised"
    again = await api.patch(f"{path}/{coded['id']}/revoke", {"reason": "unused"})
    assert again.status == 200 and again.body["revoke_reason"] == "compromised"
    text = await api.patch(f"{path}/{texted['id']}/revoke", {"reason": "  key pasted in a ticket "})
    assert text.body["revoke_reason"] == "key pasted in a ticket"
    assert (await api.patch(f"{path}/{plain['id']}/revoke")).body["revoke_reason"] == "revoked"
    listed = {t["id"]: t["revoke_reason"] for t in (await api.get(path)).body["data"]}
    assert listed == {
        coded["id"]: "compromised",
        texted["id"]: "key pasted in a ticket",
        plain["id"]: "revoked",
    }
    assert (await issue_token(api, account["id"]))["revoke_reason"] is None


async def test_a_bad_revocation_reason_is_a_400_that_changes_nothing(
    api: ApiClient, api_runtime: Runtime
) -> None:
    account = await new_account(api)
    issued = await issue_token(api, account["id"])
    path = f"{tokens_path(account['id'])}/{issued['id']}/revoke"
    head = await log_head(api_runtime)
    for body in (
        {"reason": "deleted"},
        {"reason": "account_deleted"},
        {"reason": ""},
        {"reason": "x" * 256},
        {"reason": "line\nbreak"},
        {"reason": 7},
    ):
        assert_problem(await api.patch(path, body), 400, "reason")
    assert_problem(await api.patch(path, {"why": "no"}), 400, "why")
    assert await log_head(api_runtime) == head
    assert (await api.get(f"{tokens_path(account['id'])}/{issued['id']}")).body["state"] == "ACTIVE"
