"""``Idempotency-Key`` on POST through the whole stack: a retry gets the first answer, nothing new is
appended, and the replayed token secret is the one issued the first time."""

from services.composition import Runtime
from tests.api.helpers import in_days, log_head, new_account
from tests.api_fixture import ApiClient, unique


async def test_retried_token_issue_returns_the_first_response(api: ApiClient, api_runtime: Runtime) -> None:
    account = await new_account(api)
    path = f"/v3/system-accounts/{account['id']}/access-tokens"
    body = {"name": unique("idem"), "expires_at": in_days(1)}
    headers = {"Idempotency-Key": unique("key")}
    first = await api.post(path, body, headers=headers)
    assert first.status == 201
    head = await log_head(api_runtime)
    retry = await api.post(path, body, headers=headers)
    assert (retry.status, retry.body) == (first.status, first.body)
    assert await log_head(api_runtime) == head


async def test_a_failed_command_is_replayed_too(api: ApiClient, api_runtime: Runtime) -> None:
    account = await new_account(api)
    headers = {"Idempotency-Key": unique("key")}
    body = {"name": account["name"], "description": "taken"}
    first = await api.post("/v3/system-accounts", body, headers=headers)
    assert first.status == 409
    retry = await api.post("/v3/system-accounts", body, headers=headers)
    assert retry.status == 409 and retry.body["detail"] == first.body["detail"]


async def test_the_same_key_with_another_body_is_refused(api: ApiClient) -> None:
    headers = {"Idempotency-Key": unique("key")}
    first = await api.post("/v3/system-accounts", {"name": unique("a"), "description": ""}, headers=headers)
    assert first.status == 201
    other = await api.post("/v3/system-accounts", {"name": unique("b"), "description": ""}, headers=headers)
    assert other.status == 422 and other.content_type == "application/problem+json"
