"""Bad input gets a clear 4xx problem and changes nothing, never a 500: one test per reproduction of
the review (huge durations, deep nesting, Unicode digits and int64 overflow in cursors, NUL in
filters, dates that overflow once their offset is applied, contention past the retry budget)."""

import asyncio
import urllib.parse
from typing import Any

import pytest

from services.composition import Runtime
from tests.api.helpers import in_days, issue_token, new_account
from tests.api.identity_support import assert_problem, create_team, nothing_written
from tests.api_fixture import ApiClient, Reply, unique

HUGE_INTEGERS = (10**15, 2**63, 2**64 + 1)
OVERFLOWING_DATES = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00")


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


@pytest.fixture(scope="module")
async def token_of_account(api: ApiClient) -> tuple[str, str]:
    account = await new_account(api, "bad-input")
    token = await issue_token(api, account["id"])
    return account["id"], token["id"]


@pytest.mark.parametrize("value", [*HUGE_INTEGERS, 1e15])
async def test_a_huge_auto_extend_is_a_400(api: ApiClient, api_runtime: Runtime, value: float) -> None:
    account = await new_account(api, "auto-extend")
    body = {"name": unique("token"), "expires_at": in_days(1), "auto_extend_seconds": value}
    async with nothing_written(api_runtime):
        reply = await api.post(f"/v3/system-accounts/{account['id']}/access-tokens", body)
    assert_problem(reply, 400, "auto_extend_seconds")


@pytest.mark.parametrize("value", [*HUGE_INTEGERS, 1e15])
async def test_a_huge_grace_period_is_a_400(
    api: ApiClient, api_runtime: Runtime, token_of_account: tuple[str, str], value: float
) -> None:
    account_id, token_id = token_of_account
    path = f"/v3/system-accounts/{account_id}/access-tokens/{token_id}/rotate"
    async with nothing_written(api_runtime):
        reply = await api.post(path, {"grace_period_seconds": value})
    assert_problem(reply, 400, "grace_period_seconds")


@pytest.mark.parametrize("depth", [33, 1_000, 30_000])
async def test_deeply_nested_json_is_a_400(api: ApiClient, api_runtime: Runtime, depth: int) -> None:
    raw = b'{"name": "n", "description": ' + b"[" * depth + b"]" * depth + b"}"
    async with nothing_written(api_runtime):
        reply = await api.post("/v3/system-accounts", raw=raw)
    assert_problem(reply, 400, "body")


async def test_json_nested_within_the_limit_is_judged_by_its_fields(api: ApiClient) -> None:
    raw = b'{"name": "n", "description": ' + b"[" * 20 + b"]" * 20 + b"}"
    assert_problem(await api.post("/v3/system-accounts", raw=raw), 400, "description", "is_string")


CURSOR_VALUES = ("²", "٣", "1²", "99999999999999999999", "9223372036854775808", "1" * 5000, "-1")


@pytest.mark.parametrize("value", CURSOR_VALUES)
@pytest.mark.parametrize("parameter", ["page[size]", "page[after]"])
async def test_bad_numbers_in_audit_pages_are_400s(api: ApiClient, parameter: str, value: str) -> None:
    if parameter == "page[after]":
        value = f"{value}.1"
    reply = await api.get(f"/v3/audit/events?{parameter}={_q(value)}")
    assert_problem(reply, 400, parameter)


@pytest.mark.parametrize("value", CURSOR_VALUES)
@pytest.mark.parametrize("parameter", ["page[size]", "page[after]"])
async def test_bad_numbers_in_usage_pages_are_400s(
    api: ApiClient, token_of_account: tuple[str, str], parameter: str, value: str
) -> None:
    account_id, token_id = token_of_account
    path = f"/v3/system-accounts/{account_id}/access-tokens/{token_id}/usage"
    assert_problem(await api.get(f"{path}?{parameter}={_q(value)}"), 400, parameter)


@pytest.mark.parametrize("value", ["²", "99999999999999999999", "1" * 5000])
@pytest.mark.parametrize("parameter", ["page[size]", "page[number]"])
async def test_bad_numbers_in_collection_pages_are_400s(api: ApiClient, parameter: str, value: str) -> None:
    assert_problem(await api.get(f"/v3/system-accounts?{parameter}={_q(value)}"), 400, parameter)


@pytest.mark.parametrize("parameter", ["filter[type]", "filter[account_id]", "filter[token_id]"])
async def test_nul_in_audit_filters_is_a_400(api: ApiClient, parameter: str) -> None:
    assert_problem(await api.get(f"/v3/audit/events?{parameter}=a%00b"), 400, parameter)


@pytest.mark.parametrize("value", OVERFLOWING_DATES)
async def test_a_body_date_that_overflows_in_utc_is_a_400(
    api: ApiClient, api_runtime: Runtime, value: str
) -> None:
    account = await new_account(api, "dates")
    path = f"/v3/system-accounts/{account['id']}/access-tokens"
    async with nothing_written(api_runtime):
        reply = await api.post(path, {"name": unique("token"), "expires_at": value})
        assert_problem(reply, 400, "expires_at", "is_date_time")
        body = {
            "name": unique("t"),
            "expires_at": in_days(1),
            "auto_extend_seconds": 60,
            "max_expires_at": value,
        }
        assert_problem(await api.post(path, body), 400, "max_expires_at", "is_date_time")


@pytest.mark.parametrize("value", OVERFLOWING_DATES)
async def test_a_query_date_that_overflows_in_utc_is_a_400(
    api: ApiClient, token_of_account: tuple[str, str], value: str
) -> None:
    account_id, token_id = token_of_account
    paths = {
        "as_of": [
            f"/v3/system-accounts/{account_id}",
            f"/v3/system-accounts/{account_id}/access-tokens",
            f"/v3/system-accounts/{account_id}/access-tokens/{token_id}",
            f"/v3/system-accounts/{account_id}/assigned-roles",
            f"/v3/system-accounts/{account_id}/teams",
        ],
        "filter[occurred_at][gte]": [
            "/v3/audit/events",
            f"/v3/system-accounts/{account_id}/access-tokens/{token_id}/usage",
        ],
        "filter[occurred_at][lt]": ["/v3/audit/events"],
    }
    for parameter, under in paths.items():
        for path in under:
            reply = await api.get(f"{path}?{parameter}={_q(value)}")
            assert_problem(reply, 400, parameter, "is_date_time")


def _assert_retryable_conflicts(replies: list[Reply], success: int) -> int:
    """Every answer is a success or a retryable 409 problem; returns how many succeeded."""
    for reply in replies:
        assert reply.status in (success, 409), reply.body
        if reply.status == 409:
            assert_problem(reply, 409)
            assert reply.headers.get("Retry-After") == "1"
    return sum(reply.status == success for reply in replies)


async def _events_of(api: ApiClient, account_id: str, event_type: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    path: str | None = (
        f"/v3/audit/events?filter[account_id]={account_id}&filter[type]={event_type}&page[size]=100"
    )
    while path:
        page = await api.get(path)
        assert page.status == 200, page.body
        events += page.body["data"]
        path = page.body["meta"]["page"]["next"]
    return events


async def test_parallel_rotations_of_one_token_are_200s_or_retryable_409s(
    api: ApiClient, api_runtime: Runtime
) -> None:
    account = await new_account(api, "contention")
    token = await issue_token(api, account["id"])
    path = f"/v3/system-accounts/{account['id']}/access-tokens/{token['id']}/rotate"
    replies = await asyncio.gather(*(api.post(path, {"grace_period_seconds": 0}) for _ in range(40)))
    rotated = _assert_retryable_conflicts(list(replies), 200)
    await api_runtime.until_read_models_current()
    # A 409 changed nothing: the log holds exactly one rotation per 200.
    assert len(await _events_of(api, account["id"], "token.rotated")) == rotated


async def test_a_burst_of_team_adds_is_201s_or_retryable_409s(api: ApiClient) -> None:
    team = await create_team(api, "burst")
    accounts = [await new_account(api, "member") for _ in range(30)]
    path = f"/v3/teams/{team['id']}/system-accounts"
    replies = await asyncio.gather(*(api.post(path, {"id": account["id"]}) for account in accounts))
    added = _assert_retryable_conflicts(list(replies), 201)
    members = await api.get(f"{path}?page[size]=100")
    assert members.status == 200, members.body
    assert members.body["meta"]["page"]["total"] == added
