"""A system account with a lifetime over HTTP (our ``expires_at`` extension): set on create or by
PATCH, shown on the account; once it has passed the account's tokens are refused at once and the
account reads as disabled (whether or not the scheduler has recorded ``account.expired``: the test
service runs no scheduler), and it is enabled again only with a new lifetime in the future, or none.
"""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from services.composition import Runtime
from tests.api.helpers import assert_problem, grant_identity_role, in_days, issue_token, log_head
from tests.api_fixture import ApiClient, unique

ACCOUNTS = "/v3/system-accounts"


def _in_seconds(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


async def _account(api: ApiClient, **fields: Any) -> dict[str, Any]:
    reply = await api.post(ACCOUNTS, {"name": unique("temp"), "description": "", **fields})
    assert reply.status == 201, reply.body
    created: dict[str, Any] = reply.body
    return created


async def test_an_account_created_with_a_lifetime_shows_it_and_none_is_null(api: ApiClient) -> None:
    year = in_days(365)
    account = await _account(api, expires_at=year)
    assert datetime.fromisoformat(account["expires_at"]) == datetime.fromisoformat(year)
    assert account["enabled"] is True
    assert (await api.get(f"{ACCOUNTS}/{account['id']}")).body == account
    (listed,) = (await api.get(f"{ACCOUNTS}?filter[name][eq]={account['name']}")).body["data"]
    assert listed == account
    assert (await _account(api))["expires_at"] is None
    assert (await _account(api, expires_at=None))["expires_at"] is None


async def test_patch_sets_moves_and_clears_the_lifetime(api: ApiClient) -> None:
    account = await _account(api, expires_at=in_days(30))
    path = f"{ACCOUNTS}/{account['id']}"
    renamed = await api.patch(path, {"description": "kept"})
    assert renamed.status == 200 and renamed.body["expires_at"] == account["expires_at"]
    moved = await api.patch(path, {"expires_at": in_days(60)})
    assert moved.status == 200 and moved.body["expires_at"] != account["expires_at"]
    assert moved.body["updated_at"] > account["updated_at"]
    cleared = await api.patch(path, {"expires_at": None})
    assert cleared.status == 200 and cleared.body["expires_at"] is None
    assert (await api.get(path)).body == cleared.body


async def test_a_bad_lifetime_is_a_400_that_changes_nothing(api: ApiClient, api_runtime: Runtime) -> None:
    account = await _account(api)
    head = await log_head(api_runtime)
    for body in (
        {"expires_at": "2020-01-01T00:00:00Z"},
        {"expires_at": "next year"},
        {"expires_at": "2030-01-01T00:00:00"},
        {"expires_at": 1},
    ):
        assert_problem(
            await api.post(ACCOUNTS, {"name": unique("bad"), "description": "", **body}), 400, "expires_at"
        )
        assert_problem(await api.patch(f"{ACCOUNTS}/{account['id']}", body), 400, "expires_at")
    assert await log_head(api_runtime) == head


async def test_at_the_end_of_its_lifetime_the_accounts_tokens_stop_and_it_needs_a_new_one_to_be_enabled(
    api: ApiClient, api_runtime: Runtime
) -> None:
    account = await _account(api, expires_at=_in_seconds(1.5))
    path = f"{ACCOUNTS}/{account['id']}"
    await grant_identity_role(api, api_runtime, account["id"], "Viewer")
    secret = (await issue_token(api, account["id"], expires_at=in_days(30)))["token"]
    assert (await api.get(ACCOUNTS, token=secret)).status == 200
    await asyncio.sleep(1.7)
    assert (await api.get(ACCOUNTS, token=secret)).status == 401
    introspected = await api.post("/v3/tokens/introspect", {"token": secret})
    assert introspected.status == 200 and introspected.body["active"] is False
    lapsed = await api.get(path)
    assert lapsed.body["enabled"] is False and lapsed.body["expires_at"] == account["expires_at"]

    head = await log_head(api_runtime)
    refused = await api.patch(path, {"enabled": True})
    assert_problem(refused, 400, "expires_at", "dependent_fields")
    assert "new expires_at in the future, or null" in refused.body["invalid_parameters"][0]["reason"]
    assert_problem(
        await api.patch(path, {"enabled": True, "expires_at": _in_seconds(-60)}), 400, "expires_at"
    )
    assert await log_head(api_runtime) == head
    assert (await api.get(ACCOUNTS, token=secret)).status == 401

    renewed = await api.patch(path, {"enabled": True, "expires_at": in_days(365)})
    assert renewed.status == 200 and renewed.body["enabled"] is True
    assert (await api.get(ACCOUNTS, token=secret)).status == 200
