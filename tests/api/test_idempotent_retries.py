"""A retry returns the original answer or a clear refusal, and only to the credential that made the
request, over HTTP against the real service: a retry whose stored claim is gone (its answer was lost,
its key expired) gets the secret whose hash is stored, which works; one whose secret no longer works,
or whose account was deleted since, is a 409 that says what to do; another token replaying the key
gets nothing of the original; introspection is never under a key; a rotation ends earlier graces."""

import asyncio
from typing import Any
from urllib.parse import urlsplit

from services.composition import Runtime
from tests.api.helpers import account_with_token, assert_problem, in_days, issue_token, log_head, new_account
from tests.api.identity_support import create_team
from tests.api_fixture import ApiClient, Reply, unique

INTROSPECT = "/v3/tokens/introspect"


def _tokens(account_id: str) -> str:
    return f"/v3/system-accounts/{account_id}/access-tokens"


def _key() -> dict[str, str]:
    return {"Idempotency-Key": unique("key")}


async def _active(api: ApiClient, secret: str) -> bool:
    reply = await api.post(INTROSPECT, {"token": secret})
    assert reply.status == 200, reply.body
    active: bool = reply.body["active"]
    return active


async def _forget_claims(runtime: Runtime, key: dict[str, str]) -> None:
    """What a crash after commit, a lost answer past the key's TTL or a pending timeout leaves: the
    events are in the log, the claim is not."""
    await runtime.pool.execute("DELETE FROM idempotency_keys WHERE key = $1", key["Idempotency-Key"])


async def _issue_with_key(
    api: ApiClient, account_id: str, key: dict[str, str]
) -> tuple[dict[str, Any], Reply]:
    body = {"name": unique("idem"), "expires_at": in_days(1)}
    first = await api.post(_tokens(account_id), body, headers=key)
    assert first.status == 201, first.body
    return body, first


async def test_a_retried_issue_returns_the_secret_that_was_stored(
    api: ApiClient, api_runtime: Runtime
) -> None:
    account = await new_account(api)
    key = _key()
    body, first = await _issue_with_key(api, account["id"], key)
    for forget in (False, True):
        if forget:
            await _forget_claims(api_runtime, key)
        head = await log_head(api_runtime)
        retry = await api.post(_tokens(account["id"]), body, headers=key)
        assert (retry.status, retry.body) == (201, first.body)
        assert await log_head(api_runtime) == head
    assert await _active(api, first.body["token"])


async def test_a_retried_issue_whose_token_was_revoked_is_refused(
    api: ApiClient, api_runtime: Runtime
) -> None:
    account = await new_account(api)
    key = _key()
    body, first = await _issue_with_key(api, account["id"], key)
    revoked = await api.patch(f"{_tokens(account['id'])}/{first.body['id']}/revoke")
    assert revoked.status == 200
    for forget in (False, True):
        if forget:
            await _forget_claims(api_runtime, key)
        head = await log_head(api_runtime)
        retry = await api.post(_tokens(account["id"]), body, headers=key)
        assert_problem(retry, 409)
        assert "rotate" in retry.body["detail"] and "token" not in retry.body
        assert await log_head(api_runtime) == head


async def test_a_retried_rotation_returns_its_secret_until_rotated_again(
    api: ApiClient, api_runtime: Runtime
) -> None:
    account = await new_account(api)
    issued = await issue_token(api, account["id"])
    rotate = f"{_tokens(account['id'])}/{issued['id']}/rotate"
    key = _key()
    first = await api.post(rotate, {"grace_period_seconds": 60}, headers=key)
    assert first.status == 200
    await _forget_claims(api_runtime, key)
    retry = await api.post(rotate, {"grace_period_seconds": 60}, headers=key)
    assert (retry.status, retry.body) == (200, first.body)
    assert await _active(api, first.body["token"])

    assert (await api.post(rotate, {})).status == 200
    assert not await _active(api, first.body["token"])
    refused = await api.post(rotate, {"grace_period_seconds": 60}, headers=key)
    assert_problem(refused, 409)
    assert "rotate" in refused.body["detail"]


async def test_a_retried_account_create_after_its_deletion_is_refused(
    api: ApiClient, api_runtime: Runtime
) -> None:
    key = _key()
    body = {"name": unique("gone"), "description": ""}
    created = await api.post("/v3/system-accounts", body, headers=key)
    assert created.status == 201
    retry = await api.post("/v3/system-accounts", body, headers=key)
    assert (retry.status, retry.body) == (201, created.body)
    assert (await api.delete(f"/v3/system-accounts/{created.body['id']}")).status == 204
    await _forget_claims(api_runtime, key)
    refused = await api.post("/v3/system-accounts", body, headers=key)
    assert_problem(refused, 409)
    assert (await api.get(f"/v3/system-accounts/{created.body['id']}")).status == 404


async def test_a_retried_role_assignment_returns_the_original_answer(
    api: ApiClient, api_runtime: Runtime
) -> None:
    account = await new_account(api)
    path = f"/v3/system-accounts/{account['id']}/assigned-roles"
    body = {
        "role_name": "Viewer",
        "entity_id": api_runtime.organization.organization_id,
        "entity_type_name": "Identity",
        "entity_region": "*",
    }
    key = _key()
    first = await api.post(path, body, headers=key)
    assert first.status == 201
    await _forget_claims(api_runtime, key)
    retry = await api.post(path, body, headers=key)
    assert (retry.status, retry.body) == (201, first.body)


async def test_only_the_credential_that_used_a_key_gets_its_answer(
    api: ApiClient, api_runtime: Runtime
) -> None:
    """A sibling token, a read-only token and a token issued after the original was revoked each
    send the very request under the very key: each is a request of its own, authorised as such."""
    admin, original = await account_with_token(api, api_runtime, "Admin")
    target = await new_account(api)
    key = {"Idempotency-Key": "predictable"}
    body = {"name": unique("replayed"), "expires_at": in_days(1)}
    first = await api.post(_tokens(target["id"]), body, token=original, headers=key)
    assert first.status == 201, first.body

    sibling = (await issue_token(api, admin["id"]))["token"]
    _viewer, read_only = await account_with_token(api, api_runtime, "Viewer")
    scoped = (await issue_token(api, admin["id"], scopes=["identity:read"]))["token"]
    original_id = (await api.post(INTROSPECT, {"token": original})).body["token_id"]
    assert (await api.patch(f"{_tokens(admin['id'])}/{original_id}/revoke")).status == 200
    successor = (await issue_token(api, admin["id"]))["token"]
    for other, status in ((sibling, 409), (read_only, 403), (scoped, 403), (successor, 409)):
        reply = await api.post(_tokens(target["id"]), body, token=other, headers=key)
        assert reply.status == status, reply.body
        assert first.body["token"] not in str(reply.body)
    assert (await api.post(_tokens(target["id"]), body, token=original, headers=key)).status == 401


async def test_introspection_is_never_under_a_key(api: ApiClient) -> None:
    account = await new_account(api)
    issued = await issue_token(api, account["id"])
    key = _key()
    before = await api.post(INTROSPECT, {"token": issued["token"]}, headers=key)
    assert before.status == 200 and before.body["active"] is True
    assert (await api.patch(f"{_tokens(account['id'])}/{issued['id']}/revoke")).status == 200
    after = await api.post(INTROSPECT, {"token": issued["token"]}, headers=key)
    assert after.status == 200 and after.body["active"] is False
    assert before.headers["Cache-Control"] == after.headers["Cache-Control"] == "no-store"


async def test_an_emergency_rotation_ends_an_earlier_grace_at_once(api: ApiClient) -> None:
    account = await new_account(api)
    issued = await issue_token(api, account["id"])
    rotate = f"{_tokens(account['id'])}/{issued['id']}/rotate"
    graced = await api.post(rotate, {"grace_period_seconds": 3600})
    assert graced.status == 200
    assert await _active(api, issued["token"]) and await _active(api, graced.body["token"])
    again = await api.post(rotate, {"grace_period_seconds": 3600})
    assert not await _active(api, issued["token"])
    assert await _active(api, graced.body["token"])
    emergency = await api.post(rotate, {"grace_period_seconds": 0})
    for secret in (issued["token"], graced.body["token"], again.body["token"]):
        assert not await _active(api, secret)
    assert await _active(api, emergency.body["token"])


async def test_an_idempotency_key_that_is_not_utf8_is_a_400(api: ApiClient) -> None:
    account = await new_account(api)
    url = urlsplit(api.base_url)
    body = b'{"name": "bad-key", "expires_at": null}'
    request = (
        (
            f"POST {_tokens(account['id'])} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Authorization: Bearer {api.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n"
        ).encode()
        + b"Idempotency-Key: k\xff\xfe\r\n\r\n"
        + body
    )
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(request)
    await writer.drain()
    status_line = await reader.readline()
    response = await reader.read()
    writer.close()
    assert status_line.split()[1] == b"400", response
    assert b"Idempotency-Key" in response


async def test_a_retry_is_authorised_again_before_it_is_answered(
    api: ApiClient, api_runtime: Runtime
) -> None:
    """An Admin adds an account to a team under a key; the team then gets a role that Admin cannot
    grant. The same request under the same key, by the same token, is refused (403) like a new one:
    nothing about the first answer is handed out before the caller's rights of now are checked."""
    _admin, token = await account_with_token(api, api_runtime, "Admin")
    team = await create_team(api)
    member = await new_account(api)
    path = f"/v3/teams/{team['id']}/system-accounts"
    key = _key()
    assert (await api.post(path, {"id": member["id"]}, token=token, headers=key)).status == 201
    auditor = {
        "role_name": "Auditor",
        "entity_id": api_runtime.organization.organization_id,
        "entity_type_name": "Identity",
        "entity_region": "*",
    }
    assert (await api.post(f"/v3/teams/{team['id']}/assigned-roles", auditor)).status == 201
    assert_problem(await api.post(path, {"id": member["id"]}, token=token, headers=key), 403)


async def test_deeply_nested_json_under_a_key_is_a_4xx(api: ApiClient) -> None:
    """The key's fingerprint of a body nested 30,000 deep is no RecursionError: the body's own
    check answers it."""
    deep = b'{"name": "deep", "description": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    reply = await api.post("/v3/system-accounts", raw=deep, headers=_key())
    assert 400 <= reply.status < 500 and reply.content_type == "application/problem+json", reply.body
