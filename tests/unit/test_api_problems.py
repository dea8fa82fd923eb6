"""problem+json responses in Konnect's shape, the request id, and the problem middleware."""

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.api.problems import (
    INSTANCE_PREFIX,
    PROBLEM_CONTENT_TYPE,
    BadRequest,
    Conflict,
    Forbidden,
    InvalidParameter,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    ProblemError,
    ServiceUnavailable,
    Unauthenticated,
    UnprocessableEntity,
    UnsupportedMediaType,
    problem_middleware,
    request_id,
)

SECRET = "spat_12345678901234567890123456789012345678901234567890"


def _raiser(error: Exception) -> Any:
    async def handler(_request: web.Request) -> web.Response:
        raise error

    return handler


async def _ok(request: web.Request) -> web.Response:
    return web.json_response({"request_id": request_id(request)})


async def _redirect(_request: web.Request) -> web.Response:
    raise web.HTTPFound("/ok")


async def _big(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({})


async def _leaky(request: web.Request) -> web.Response:
    await request.read()
    raise RuntimeError("database exploded")


ERRORS: dict[str, Exception] = {
    "bad": BadRequest([InvalidParameter("name", "is a required field", "required", "body")]),
    "unauthenticated": Unauthenticated(),
    "forbidden": Forbidden(),
    "denied": Forbidden("Only enterprise organizations can create teams", title="Permission denied"),
    "not-found": NotFound("The requested team was not found"),
    "conflict": Conflict("A system account with this name already exists"),
    "precondition": PreconditionFailed(),
    "too-large": PayloadTooLarge(10),
    "media": UnsupportedMediaType(),
    "unprocessable": UnprocessableEntity("nope"),
    "unavailable": ServiceUnavailable(retry_after_seconds=3),
    "teapot": ProblemError(
        418, "I'm a teapot", "short and stout", problem_type="https://httpstatuses.com/418"
    ),
}


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(middlewares=[problem_middleware], client_max_size=1024)
    app.router.add_get("/ok", _ok)
    app.router.add_get("/redirect", _redirect)
    app.router.add_post("/big", _big)
    app.router.add_post("/leaky", _leaky)
    for name, error in ERRORS.items():
        app.router.add_get(f"/errors/{name}", _raiser(error))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def _problem(response: Any) -> dict[str, Any]:
    assert response.headers["Content-Type"] == PROBLEM_CONTENT_TYPE
    body: dict[str, Any] = json.loads(await response.read())
    assert body["status"] == response.status
    assert body["instance"] == INSTANCE_PREFIX + response.headers["X-Request-Id"]
    return body


async def test_401_is_konnects_unauthenticated_shape(
    client: TestClient[web.Request, web.Application],
) -> None:
    response = await client.get("/errors/unauthenticated")
    body = await _problem(response)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert set(body) == {"status", "title", "instance", "detail"}
    assert body["title"] == "Unauthenticated"
    assert body["detail"] == "A valid token is required"


async def test_400_carries_invalid_parameters(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.get("/errors/bad")
    body = await _problem(response)
    assert response.status == 400
    assert body["title"] == "Bad Request"
    assert body["detail"] == "Invalid parameters: name"
    assert body["invalid_parameters"] == [
        {"field": "name", "reason": "is a required field", "rule": "required", "source": "body"}
    ]


@pytest.mark.parametrize(
    ("name", "status", "title", "detail"),
    [
        ("forbidden", 403, "Forbidden", "You do not have permission to perform this action"),
        ("denied", 403, "Permission denied", "Only enterprise organizations can create teams"),
        ("not-found", 404, "Not Found", "The requested team was not found"),
        ("conflict", 409, "Conflict", "A system account with this name already exists"),
        ("precondition", 412, "Precondition Failed", "Precondition failed"),
        ("too-large", 413, "Payload Too Large", "The request body must not be larger than 10 bytes"),
        ("media", 415, "Unsupported Media Type", "The request body must be application/json"),
        ("unprocessable", 422, "Unprocessable Entity", "nope"),
        ("unavailable", 503, "Service Unavailable", "The service is not ready yet"),
    ],
)
async def test_each_problem_class_has_its_status_and_title(
    client: TestClient[web.Request, web.Application], name: str, status: int, title: str, detail: str
) -> None:
    response = await client.get(f"/errors/{name}")
    body = await _problem(response)
    assert (response.status, body["title"], body["detail"]) == (status, title, detail)
    assert "type" not in body
    assert "invalid_parameters" not in body


async def test_type_and_extra_headers_are_passed_through(
    client: TestClient[web.Request, web.Application],
) -> None:
    body = await _problem(await client.get("/errors/teapot"))
    assert body["type"] == "https://httpstatuses.com/418"
    response = await client.get("/errors/unavailable")
    assert response.headers["Retry-After"] == "3"


async def test_unknown_path_is_a_404_problem(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.get("/nowhere")
    body = await _problem(response)
    assert response.status == 404
    assert body["title"] == "Not Found"


async def test_wrong_method_is_a_405_problem_with_allow(
    client: TestClient[web.Request, web.Application],
) -> None:
    response = await client.delete("/ok")
    body = await _problem(response)
    assert response.status == 405
    assert body["title"] == "Method Not Allowed"
    assert "GET" in response.headers["Allow"]


async def test_aiohttps_body_limit_is_a_413_problem(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.post("/big", data=b"x" * 4096)
    await _problem(response)
    assert response.status == 413


async def test_unexpected_errors_are_an_opaque_500_logged_with_the_request_id(
    client: TestClient[web.Request, web.Application], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="services.api.problems"):
        response = await client.post(
            "/leaky?filter[name][eq]=mine",
            data=json.dumps({"token": SECRET}),
            headers={"Authorization": f"Bearer {SECRET}"},
        )
    raw = await response.read()
    body = await _problem(response)
    assert response.status == 500
    assert set(body) == {"status", "title", "instance", "detail"}
    assert body["title"] == "Internal Server Error"
    assert b"exploded" not in raw
    assert b"RuntimeError" not in raw
    records = [r for r in caplog.records if r.name == "services.api.problems"]
    assert len(records) == 1
    logged = records[0].getMessage() + (caplog.text or "")
    assert response.headers["X-Request-Id"] in logged
    assert SECRET not in logged
    assert "mine" not in records[0].getMessage()


async def test_every_response_has_its_own_request_id(
    client: TestClient[web.Request, web.Application],
) -> None:
    first = await client.get("/ok")
    second = await client.get("/ok")
    assert first.status == second.status == 200
    assert first.headers["X-Request-Id"] == (await first.json())["request_id"]
    assert first.headers["X-Request-Id"] != second.headers["X-Request-Id"]


async def test_redirects_raised_as_exceptions_pass_through(
    client: TestClient[web.Request, web.Application],
) -> None:
    response = await client.get("/redirect", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/ok"
    assert response.headers["X-Request-Id"]


def test_bad_request_needs_parameters_and_deduplicates_them() -> None:
    with pytest.raises(ValueError, match="at least one"):
        BadRequest([])
    item = InvalidParameter("name", "cannot be blank", "min_length", "body", minimum=1)
    assert BadRequest([item, item]).invalid_parameters == (item,)


def test_invalid_parameter_json_leaves_out_what_is_unset() -> None:
    standard = InvalidParameter(field="name", reason="cannot be blank")
    assert msgspec.json.decode(msgspec.json.encode(standard)) == {
        "field": "name",
        "reason": "cannot be blank",
    }
    choice = InvalidParameter(
        "entity_region", "is not one of the allowed values", "enum", choices=("us", "eu")
    )
    assert msgspec.json.decode(msgspec.json.encode(choice)) == {
        "field": "entity_region",
        "reason": "is not one of the allowed values",
        "rule": "enum",
        "choices": ["us", "eu"],
    }
