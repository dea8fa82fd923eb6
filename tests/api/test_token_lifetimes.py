"""Expiry presets and sliding expiry over HTTP: ``ttl_seconds`` instead of ``expires_at``, refusals
that say what the deployment allows (the test deployment: at most 365 days, no token that never
expires), sliding expiry without ``expires_at`` as an idle timeout, and ``updated_at`` moving with
``expires_at``."""

import asyncio
from datetime import UTC, datetime, timedelta

from services.composition import Runtime
from tests.api.helpers import assert_problem, grant_identity_role, in_days, issue_token, log_head, new_account
from tests.api_fixture import ApiClient, unique


def _tokens(account_id: str) -> str:
    return f"/v3/system-accounts/{account_id}/access-tokens"


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_presets_of_the_seed_products_are_ttl_seconds(api: ApiClient) -> None:
    account = await new_account(api)
    for days in (30, 60, 90, 365):
        before = datetime.now(UTC).replace(microsecond=0)
        issued = await issue_token(api, account["id"], expires_at=None, ttl_seconds=days * 86400)
        after = datetime.now(UTC)
        expires_at = _instant(issued["expires_at"])
        assert expires_at.microsecond == 0
        assert before + timedelta(days=days) <= expires_at <= after + timedelta(days=days)
        fetched = await api.get(f"{_tokens(account['id'])}/{issued['id']}")
        assert fetched.body["expires_at"] == issued["expires_at"]


async def test_ttl_seconds_with_expires_at_or_past_the_policy_is_a_400_that_says_why(
    api: ApiClient, api_runtime: Runtime
) -> None:
    account = await new_account(api)
    head = await log_head(api_runtime)
    both = await api.post(
        _tokens(account["id"]), {"name": unique("t"), "expires_at": in_days(1), "ttl_seconds": 60}
    )
    assert_problem(both, 400, "ttl_seconds", "dependent_fields")
    assert "not both" in both.body["invalid_parameters"][0]["reason"]
    allowed = "at most 365 days (31536000 seconds) and does not allow tokens that never expire"
    for body, field in [
        ({"ttl_seconds": 366 * 86400}, "ttl_seconds"),
        ({"expires_at": in_days(400)}, "expires_at"),
        ({}, "expires_at"),
        ({"expires_at": None}, "expires_at"),
    ]:
        reply = await api.post(_tokens(account["id"]), {"name": unique("t"), **body})
        assert_problem(reply, 400, field)
        assert allowed in reply.body["invalid_parameters"][0]["reason"], reply.body
    assert_problem(
        await api.post(_tokens(account["id"]), {"name": "t", "ttl_seconds": 0}), 400, "ttl_seconds"
    )
    assert await log_head(api_runtime) == head


async def test_sliding_expiry_without_expires_at_is_an_idle_timeout_that_slides_on_use(
    api: ApiClient, api_runtime: Runtime
) -> None:
    account = await new_account(api)
    await grant_identity_role(api, api_runtime, account["id"], "Viewer")
    before = datetime.now(UTC).replace(microsecond=0)
    issued = await issue_token(api, account["id"], expires_at=None, auto_extend_seconds=6)
    first = _instant(issued["expires_at"])
    assert first.microsecond == 0 and before + timedelta(seconds=6) <= first
    assert first <= datetime.now(UTC) + timedelta(seconds=6)
    assert issued["auto_extend_seconds"] == 6 and "max_expires_at" in issued
    assert issued["updated_at"] == issued["created_at"]
    await asyncio.sleep(1.2)  # a use now gains more than the threshold (1% of 6 s)
    assert (await api.get("/v3/system-accounts", token=issued["token"])).status == 200
    path = f"{_tokens(account['id'])}/{issued['id']}"
    for _ in range(50):
        fetched = await api.get(path)
        if fetched.body["expires_at"] != issued["expires_at"]:
            break
        await asyncio.sleep(0.1)
    moved = _instant(fetched.body["expires_at"])
    assert moved > first and moved.microsecond == 0
    assert _instant(fetched.body["updated_at"]) > _instant(issued["updated_at"])
    listed = await api.get(_tokens(account["id"]))
    assert listed.body["data"][0]["updated_at"] == fetched.body["updated_at"]
