"""Every verification is recorded, whatever the request contains, and no secret is written in clear
(real HTTP, the real service and PostgreSQL).

A hostile request (a NUL or a secret in a path no route matches, bytes that are not UTF-8 in the
``User-Agent``, a ``%0a`` that would forge an access-log line, random bytes anywhere) is recorded
as readable text, and the next valid verification is recorded after it: in the usage log, as
``token.used`` (``last_used_at``) and as ``token.extended`` (sliding expiry). Also here: two
``Authorization`` headers are refused, and answers carrying a secret are never cached.
"""

import asyncio
import logging
import urllib.parse
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.composition import Runtime
from services.tokens.secrets import PREFIX
from tests.api.helpers import account_with_token, assert_problem, in_days, issue_token, new_account
from tests.api.identity_support import nothing_written
from tests.api_fixture import ApiClient, Reply, unique

ACCESS_LOGGER = "aiohttp.access"
NOT_STORED = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def send_raw(api_url: str, head: bytes, body: bytes = b"") -> int:
    """Sends ``head`` (request line and headers, without the blank line) and ``body`` byte for byte;
    returns the answer's status (0 when the server closed without one)."""
    url = urllib.parse.urlsplit(api_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        framing = b"Host: tokenledger\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
        writer.write(head + b"\r\n" + framing + body)
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
    status_line = answer.split(b"\r\n", 1)[0].split(b" ")
    return int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0


async def rows_where(runtime: Runtime, condition: str, *values: Any) -> list[dict[str, Any]]:
    query = f"SELECT outcome, reason, token_id::text, operation, user_agent FROM usage_log WHERE {condition}"
    return [dict(row) for row in await runtime.pool.fetch(query, *values)]


async def assert_next_use_is_recorded(api: ApiClient, runtime: Runtime, secret: str) -> None:
    """A valid request with ``secret`` after whatever came before: the usage log stores its row."""
    marker = unique("next-valid-use")
    assert (await api.get("/v3/system-accounts", token=secret, headers={"User-Agent": marker})).status == 200
    assert await runtime.usage.flush(), "a usage flush left rows or events behind"
    assert [row["outcome"] for row in await rows_where(runtime, "user_agent = $1", marker)] == ["accepted"]


async def token_id_of(api: ApiClient, account_id: str) -> str:
    [token] = (await api.get(f"/v3/system-accounts/{account_id}/access-tokens")).body["data"]
    token_id: str = token["id"]
    return token_id


async def usage_event_types(runtime: Runtime, token_id: str) -> list[str]:
    types: list[str] = await runtime.pool.fetchval(
        "SELECT coalesce(array_agg(type ORDER BY global_position), '{}') FROM events"
        " WHERE stream_id = ANY($1::text[]) AND type IN ('token.used', 'token.extended')",
        [f"token-usage-{token_id}", f"token-{token_id}"],
    )
    return types


@pytest.fixture
def access_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    yield caplog


async def access_lines(caplog: pytest.LogCaptureFixture, marker: str) -> list[str]:
    """The access-log messages naming ``marker`` (written just after the answer is sent)."""
    for _ in range(200):
        lines = [
            r.getMessage() for r in caplog.records if r.name == ACCESS_LOGGER and marker in r.getMessage()
        ]
        if lines:
            return lines
        await asyncio.sleep(0.01)
    raise AssertionError(f"no access-log line names {marker!r}")


# -- finding: a NUL in an unrouted path, an undecodable User-Agent -----------------------------------


async def test_a_nul_in_an_unrouted_path_is_recorded_and_the_log_keeps_recording(
    api: ApiClient, api_url: str, api_runtime: Runtime
) -> None:
    _account, secret = await account_with_token(api, api_runtime, "Viewer")
    marker = unique("nope")
    status = await send_raw(
        api_url, b"GET /v3/%s%%00 HTTP/1.1\r\nAuthorization: Bearer not-a-token" % marker.encode()
    )
    assert status == 401
    assert await api_runtime.usage.flush()
    [row] = await rows_where(api_runtime, "strpos(operation, $1) > 0", marker)
    assert (row["outcome"], row["reason"], row["operation"]) == (
        "rejected",
        "malformed",
        f"GET /v3/{marker}\\x00",
    )
    await assert_next_use_is_recorded(api, api_runtime, secret)


async def test_an_undecodable_user_agent_is_recorded_and_use_and_sliding_expiry_go_on(
    api: ApiClient, api_url: str, api_runtime: Runtime
) -> None:
    account, _ = await account_with_token(api, api_runtime, "Viewer")
    sliding = await issue_token(
        api, account["id"], expires_at=in_days(1), auto_extend_seconds=3 * 86400, max_expires_at=in_days(2)
    )
    status = await send_raw(
        api_url,
        b"GET /v3/system-accounts HTTP/1.1\r\nUser-Agent: curl/\xff\xfe\r\nAuthorization: Bearer "
        + sliding["token"].encode(),
    )
    assert status == 200
    assert await api_runtime.usage.flush()

    [row] = await rows_where(api_runtime, "token_id = $1::uuid", sliding["id"])
    assert (row["outcome"], row["user_agent"]) == ("accepted", "curl/\\udcff\\udcfe")
    assert await usage_event_types(api_runtime, sliding["id"]) == ["token.used", "token.extended"]
    await api_runtime.until_read_models_current()
    fetched = await api.get(f"/v3/system-accounts/{account['id']}/access-tokens/{sliding['id']}")
    assert fetched.body["expires_at"] == sliding["max_expires_at"]
    assert fetched.body["last_used_at"] is not None

    # Another token's next use is recorded as well: usage row, token.used and last_used_at.
    other_account, other_secret = await account_with_token(api, api_runtime, "Viewer")
    await assert_next_use_is_recorded(api, api_runtime, other_secret)
    other_id = await token_id_of(api, other_account["id"])
    assert await usage_event_types(api_runtime, other_id) == ["token.used"]
    await api_runtime.until_read_models_current()
    other = await api.get(f"/v3/system-accounts/{other_account['id']}/access-tokens/{other_id}")
    assert other.body["last_used_at"] is not None


# -- finding: a secret pasted into a path ------------------------------------------------------------


async def test_a_secret_pasted_into_a_path_is_neither_stored_nor_logged_in_clear(
    api: ApiClient, api_url: str, api_runtime: Runtime, access_log: pytest.LogCaptureFixture
) -> None:
    _victim, pasted = await account_with_token(api, api_runtime, "Admin")
    _caller, secret = await account_with_token(api, api_runtime, "Viewer")
    body = pasted.removeprefix(PREFIX)
    assert (await api.get(f"/v3/{pasted}", token="not-a-token")).status == 401
    assert (await api.get(f"/v3/{pasted}", token=secret)).status == 404  # a genuine caller: token.used
    assert (await api.get(f"/v3/oops/{body}", token=secret)).status == 404  # the secret without prefix
    assert await api_runtime.usage.flush()

    for fragment in (pasted, body):
        stored = await api_runtime.pool.fetchval(
            "SELECT count(*) FROM usage_log u WHERE strpos(u::text, $1) > 0", fragment
        )
        in_events = await api_runtime.pool.fetchval(
            "SELECT count(*) FROM events WHERE strpos(data::text, $1) > 0", fragment
        )
        assert (stored, in_events) == (0, 0), fragment
    operations = await api_runtime.pool.fetch(
        "SELECT operation FROM usage_log WHERE operation LIKE 'GET /v3/%redacted%'"
        " ORDER BY position DESC LIMIT 3"
    )
    assert {row["operation"] for row in operations} == {"GET /v3/[redacted]", "GET /v3/oops/[redacted]"}

    lines = await access_lines(access_log, "/v3/oops/[redacted]")
    assert all(pasted not in r.getMessage() and body not in r.getMessage() for r in access_log.records)
    assert len(lines) == 1
    await assert_next_use_is_recorded(api, api_runtime, secret)


# -- the access log ----------------------------------------------------------------------------------


async def test_a_path_cannot_forge_or_colour_an_access_log_line(
    api: ApiClient, access_log: pytest.LogCaptureFixture
) -> None:
    marker = unique("forge")
    forged = f'{marker}\n127.0.0.1 "GET /v3/system-accounts HTTP/1.1" 200 0 0.1ms\x1b[31m\u202e\\'
    assert (await api.get("/v3/" + urllib.parse.quote(forged, safe=""))).status == 404
    [line] = await access_lines(access_log, marker)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\u202e" not in line
    assert line.count('"') == 2, line  # only the format's own quotes around the request
    assert f"{marker}\\x0a127.0.0.1 \\x22GET" in line and '\\x1b[31m\\u202e\\x5c"' in line


# -- two Authorization headers -----------------------------------------------------------------------


async def test_two_authorization_headers_are_refused_and_change_nothing(
    api: ApiClient, api_url: str, api_runtime: Runtime, admin_token: str
) -> None:
    _viewer, viewer_secret = await account_with_token(api, api_runtime, "Viewer")
    name = unique("twice")
    pairs = [
        [("Authorization", f"Bearer {admin_token}"), ("Authorization", f"Bearer {viewer_secret}")],
        [("Authorization", f"Bearer {admin_token}"), ("Authorization", f"Bearer {admin_token}")],
        [("Authorization", "Bearer not-a-token"), ("Authorization", f"Bearer {admin_token}")],
    ]
    async with aiohttp.ClientSession() as session:
        for headers in pairs:
            async with (
                nothing_written(api_runtime),
                session.post(
                    api_url + "/v3/system-accounts", json={"name": name, "description": ""}, headers=headers
                ) as response,
            ):
                body = await response.json(content_type=None)
                assert_problem(
                    Reply(response.status, body, response.headers), 400, "Authorization", "invalid"
                )
            async with session.get(api_url + "/v3/system-accounts", headers=headers) as response:
                assert response.status == 400
    assert (await api.get(f"/v3/system-accounts?filter[name][eq]={name}")).body["data"] == []


# -- answers carrying a secret -----------------------------------------------------------------------


async def test_answers_carrying_a_secret_are_never_stored_by_a_cache(api: ApiClient) -> None:
    account = await new_account(api)
    path = f"/v3/system-accounts/{account['id']}/access-tokens"
    body = {"name": unique("cached"), "expires_at": in_days(1)}
    key = {"Idempotency-Key": unique("key")}
    created = await api.post(path, body, headers=key)
    replayed = await api.post(path, body, headers=key)
    rotated = await api.post(f"{path}/{created.body['id']}/rotate", {})
    for reply in (created, replayed, rotated):
        assert reply.status in (200, 201) and reply.body["token"].startswith(PREFIX), reply.body
        assert {name: reply.headers.get(name) for name in NOT_STORED} == NOT_STORED


# -- the boundary, fuzzed ----------------------------------------------------------------------------

_HEADER_BYTES = st.binary(max_size=300).map(lambda raw: raw.replace(b"\r", b"").replace(b"\n", b""))
_ROUTES = [b"/v3/tokens/introspect", b"/v3/system-accounts", b"/v3/teams", b"/v3/organizations/me"]
_CREDENTIALS = ["genuine", "bogus", "hostile", "none"]


def _encoded(raw: bytes) -> bytes:
    return urllib.parse.quote(raw, safe="/").encode()


@st.composite
def hostile_requests(draw: st.DrawFn) -> tuple[bytes, list[tuple[bytes, bytes]], str, bytes]:
    """A request line, headers, which credentials, a body: random where a client chooses (the path:
    valid Unicode or any bytes, percent-encoded or raw; header values; the body)."""
    method = draw(st.sampled_from([b"GET", b"POST", b"PATCH", b"DELETE", b"PUT", b"BREW"]))
    target = draw(
        st.sampled_from(_ROUTES)
        | st.text(max_size=200).map(lambda text: b"/v3/" + _encoded(text.encode()))
        | st.binary(max_size=200).map(lambda raw: b"/v3/" + _encoded(raw))
        | st.binary(max_size=120).map(lambda raw: b"/v3/" + raw.translate(None, b" \r\n"))
    )
    names = [b"User-Agent", b"X-Forwarded-For", b"Referer", b"Content-Type", b"Accept", b"Idempotency-Key"]
    headers = [(name, draw(_HEADER_BYTES)) for name in draw(st.lists(st.sampled_from(names), unique=True))]
    return (
        b"%s %s HTTP/1.1" % (method, target),
        headers,
        draw(st.sampled_from(_CREDENTIALS)),
        draw(st.binary()),
    )


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=hostile_requests(), hostile_credentials=_HEADER_BYTES)
async def test_no_request_stops_the_usage_log_from_recording_the_next_one(
    api: ApiClient,
    api_url: str,
    api_runtime: Runtime,
    admin_token: str,
    request: tuple[bytes, list[tuple[bytes, bytes]], str, bytes],
    hostile_credentials: bytes,
) -> None:
    request_line, headers, credentials, body = request
    presented = {
        "genuine": admin_token.encode(),
        "bogus": PREFIX.encode() + b"x" * 50,
        "hostile": hostile_credentials,
    }.get(credentials)
    if presented is not None:
        headers = [*headers, (b"Authorization", b"Bearer " + presented)]
    await send_raw(api_url, b"\r\n".join([request_line, *(b"%s: %s" % pair for pair in headers)]), body)
    await assert_next_use_is_recorded(api, api_runtime, admin_token)
