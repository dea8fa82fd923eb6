"""The GitLab-compatible leaked-token revocation endpoints: off without the shared secret (404),
401 with a wrong one, the token types listed; a reported real token revoked with reason
``leaked`` and its location recorded in ``token.revoked``; unknown, malformed, foreign or
already-revoked entries accepted silently (204, nothing written); rate-limited."""

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from events.tokens import TokenRevoked
from services.api import state
from services.api.app import create_app
from services.composition import Runtime
from services.tokens.secrets import generate_secret
from tests.api.helpers import issue_token
from tests.api.identity_support import create_account, nothing_written
from tests.api_fixture import ApiClient

SECRET = "s" * 40


async def _server(runtime: Runtime, secret: str | None) -> TestServer:
    app = create_app(revocation_secret=secret)
    state.bind(app, runtime)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.fixture(scope="module")
async def revocation_url(api_runtime: Runtime) -> AsyncIterator[str]:
    server = await _server(api_runtime, SECRET)
    yield str(server.make_url("")).rstrip("/")
    await server.close()


async def _post(url: str, body: object, secret: str | None = SECRET) -> int:
    headers = {} if secret is None else {"Authorization": secret}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/v1/revoke_tokens", json=body, headers=headers) as reply,
    ):
        return reply.status


async def test_a_reported_token_is_revoked_as_leaked_with_its_location(
    api: ApiClient, api_runtime: Runtime, revocation_url: str
) -> None:
    account = await create_account(api)
    issued = await issue_token(api, account["id"])
    location = "https://gitlab.example/acme/app/-/blob/main/.env#L3"
    report = [{"type": "tokenledger_access_token", "token": issued["token"], "location": location}]
    assert await _post(revocation_url, report) == 204
    token = await api.get(f"/v3/system-accounts/{account['id']}/access-tokens/{issued['id']}")
    assert token.body["state"] == "REVOKED"
    events = [e.event for e in await api_runtime.store.read_stream(f"token-{issued['id']}")]
    assert events[-1] == TokenRevoked(
        token_id=issued["id"], account_id=account["id"], reason="leaked", location=location
    )
    async with nothing_written(api_runtime):
        assert await _post(revocation_url, report) == 204


async def test_unknown_and_foreign_entries_are_accepted_silently(
    api_runtime: Runtime, revocation_url: str
) -> None:
    reports = [
        {"type": "tokenledger_access_token", "token": generate_secret(), "location": "x"},
        {"type": "tokenledger_access_token", "token": "spat_not_a_token", "location": "x"},
        {"type": "gitlab_personal_access_token", "token": "glpat-xxx", "location": "x"},
    ]
    async with nothing_written(api_runtime):
        assert await _post(revocation_url, reports) == 204


async def test_the_secret_guards_both_endpoints(api_runtime: Runtime, revocation_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{revocation_url}/v1/revocable_token_types", headers={"Authorization": SECRET}
        ) as reply:
            assert reply.status == 200 and await reply.json() == {"types": ["tokenledger_access_token"]}
        async with session.get(f"{revocation_url}/v1/revocable_token_types") as reply:
            assert reply.status == 401
    async with nothing_written(api_runtime):
        assert await _post(revocation_url, [], secret="wrong") == 401
        assert await _post(revocation_url, [], secret=None) == 401
    off = await _server(api_runtime, None)
    try:
        url = str(off.make_url("")).rstrip("/")
        assert await _post(url, [], secret=SECRET) == 404
    finally:
        await off.close()


async def test_it_is_rate_limited(api_runtime: Runtime) -> None:
    server = await _server(api_runtime, SECRET)
    try:
        url = str(server.make_url("")).rstrip("/")
        statuses = [await _post(url, []) for _ in range(40)]
        assert 429 in statuses and statuses[0] == 204
    finally:
        await server.close()


async def test_requests_without_the_secret_cannot_rate_limit_its_holder_out(api_runtime: Runtime) -> None:
    server = await _server(api_runtime, SECRET)
    try:
        url = str(server.make_url("")).rstrip("/")
        refused = [await _post(url, [], secret="wrong") for _ in range(40)]
        assert set(refused) == {401, 429} and refused[0] == 401
        assert await _post(url, []) == 204
    finally:
        await server.close()
