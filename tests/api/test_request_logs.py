"""The access log in the JSON format, over real HTTP: every request's line parses as one JSON object
carrying the request id (the one answered in ``X-Request-Id`` and in a problem's ``instance``), the
method, route template, status, latency and the caller's account and token ids; an incoming
``X-Request-Id`` is honoured when well-formed and replaced otherwise; no line holds a secret or a
raw control character, whatever the client sent."""

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from services.api.problems import INSTANCE_PREFIX, REQUEST_ID_HEADER
from services.logs import JsonFormatter
from tests.api.identity_support import account_with_roles
from tests.api_fixture import ApiClient, tampered, unique

ACCESS_LOGGER = "aiohttp.access"


class Captured:
    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    def text(self) -> str:
        return self._stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text().splitlines()]

    def of(self, request_id: str) -> dict[str, Any]:
        (line,) = [line for line in self.lines() if line.get("request_id") == request_id]
        return line


@pytest.fixture
def access_log() -> Iterator[Captured]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(ACCESS_LOGGER)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield Captured(stream)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_each_line_carries_the_request_and_its_caller(api: ApiClient, access_log: Captured) -> None:
    account_id, token = await account_with_roles(api, "Viewer")
    reply = await api.get(f"/v3/system-accounts/{account_id}", token=token)
    assert reply.status == 200
    line = access_log.of(reply.headers[REQUEST_ID_HEADER])
    assert line["method"] == "GET"
    assert line["route"] == "/v3/system-accounts/{accountId}"
    assert line["path"] == f"/v3/system-accounts/{account_id}"
    assert line["status"] == 200
    assert isinstance(line["latency_ms"], float) and line["latency_ms"] >= 0
    assert line["account_id"] == account_id
    introspected = await api.post("/v3/tokens/introspect", {"token": token})
    assert introspected.body["active"] is True
    assert line["token_id"] == introspected.body["token_id"]
    assert line["level"] == "INFO" and line["logger"] == ACCESS_LOGGER
    assert line["time"].endswith("Z")
    assert token not in access_log.text()


async def test_a_problem_names_the_request_id_of_its_log_line(api: ApiClient, access_log: Captured) -> None:
    reply = await api.get("/v3/system-accounts/00000000-0000-4000-8000-000000000000")
    assert reply.status == 404
    request_id = reply.headers[REQUEST_ID_HEADER]
    assert reply.body["instance"] == INSTANCE_PREFIX + request_id
    assert access_log.of(request_id)["status"] == 404


async def test_a_well_formed_incoming_request_id_is_honoured(api: ApiClient, access_log: Captured) -> None:
    sent = "trace-" + unique("id").replace("-", ".")
    reply = await api.get("/v3/system-accounts/not-an-id", headers={REQUEST_ID_HEADER: sent})
    assert reply.headers[REQUEST_ID_HEADER] == sent
    assert reply.body["instance"] == INSTANCE_PREFIX + sent
    assert access_log.of(sent)["route"] == "/v3/system-accounts/{accountId}"


@pytest.mark.parametrize(
    "sent",
    [
        "has spaces",
        'quote"d',
        "x" * 129,
        "line\\x0abreak",
        "spat_" + "A1b2C3d4E5" * 5,
        "A1b2C3d4E5" * 5,
        "",
    ],
)
async def test_an_ill_formed_request_id_is_replaced(api: ApiClient, access_log: Captured, sent: str) -> None:
    reply = await api.get("/v3/system-accounts", headers={REQUEST_ID_HEADER: sent})
    assert reply.status == 200
    answered = reply.headers[REQUEST_ID_HEADER]
    assert answered != sent and len(answered) == 32
    assert access_log.of(answered)["status"] == 200
    if sent:
        assert sent not in access_log.text()


async def test_no_secret_and_no_raw_control_character_reaches_a_line(
    api: ApiClient, admin_token: str, access_log: Captured
) -> None:
    pasted = await api.get(f"/v3/{admin_token}")
    assert pasted.status == 404
    forged = await api.get("/v3/x%0a%1b[2Jforged%22")
    assert forged.status == 404
    rejected = await api.get("/v3/system-accounts", token=tampered(admin_token))
    assert rejected.status == 401
    text = access_log.text()
    assert admin_token not in text and admin_token.removeprefix("spat_") not in text
    assert "\x1b" not in text and len(text.splitlines()) == len(access_log.lines())
    assert access_log.of(pasted.headers[REQUEST_ID_HEADER])["path"] == "/v3/[redacted]"
    line = access_log.of(forged.headers[REQUEST_ID_HEADER])
    assert line["path"] == "/v3/x\\x0a\\x1b[2Jforged\\x22" and line["route"] == "unmatched"
    refused = access_log.of(rejected.headers[REQUEST_ID_HEADER])
    assert refused["status"] == 401 and refused["account_id"] is None and refused["token_id"] is None
