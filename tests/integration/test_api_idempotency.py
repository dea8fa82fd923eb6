"""Idempotency-Key on real PostgreSQL: replay byte for byte, per-principal scope, mismatch (422),
in progress (409), 5xx releases the key, 24 h expiry, takeover of abandoned claims, sealed bodies."""

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from services.api.idempotency import (
    Claimed,
    IdempotencyStore,
    ResponseCipher,
    StoredResponse,
    idempotency_key,
    idempotency_middleware,
    request_fingerprint,
)
from services.api.parsing import read_body
from services.api.problems import BadRequest, InvalidParameter, ProblemError, problem_middleware

PEPPER = b"test pepper: thirty-two bytes or more, really"
PRINCIPAL = web.RequestKey("test.principal", str)
Client = TestClient[web.Request, web.Application]


class DomainConflict(Exception):
    """Stands for a domain error that an outer middleware maps to a problem."""


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    expires_at: str | None = None


class Harness:
    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    def count(self, name: str) -> int:
        self.calls[name] = self.calls.get(name, 0) + 1
        return self.calls[name]

    async def tokens(self, request: web.Request) -> web.Response:
        body = await read_body(request, TokenRequest)
        key = idempotency_key(request)
        principal = request.get(PRINCIPAL)
        token_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{principal}/{key}") if key and principal else uuid.uuid4()
        return web.json_response(
            {
                "id": str(token_id),
                "name": body.name,
                "token": "spat_" + secrets.token_hex(25),
                "call": self.count("tokens"),
            },
            status=201,
        )

    async def invalid(self, _request: web.Request) -> web.Response:
        self.count("invalid")
        raise BadRequest([InvalidParameter("name", "cannot be blank", "min_length", "body", minimum=1)])

    async def conflict(self, _request: web.Request) -> web.Response:
        self.count("conflict")
        raise DomainConflict("already exists")

    async def boom(self, _request: web.Request) -> web.Response:
        if self.count("boom") == 1:
            raise RuntimeError("transient failure")
        return web.json_response({"ok": True}, status=201)

    async def unavailable(self, _request: web.Request) -> web.Response:
        self.count("unavailable")
        return web.json_response({"status": 503}, status=503)

    async def slow(self, _request: web.Request) -> web.Response:
        self.entered.set()
        await self.gate.wait()
        return web.json_response({"call": self.count("slow")}, status=201)

    async def empty(self, _request: web.Request) -> web.Response:
        self.count("empty")
        return web.Response(status=201)

    async def echo_get(self, _request: web.Request) -> web.Response:
        return web.json_response({"call": self.count("get")})


@web.middleware
async def fake_auth(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> Any:
    principal = request.headers.get("X-Test-Principal")
    if principal:
        request[PRINCIPAL] = principal
    return await handler(request)


def _to_problem(error: Exception) -> ProblemError | None:
    if isinstance(error, DomainConflict):
        return ProblemError(409, "Conflict", str(error))
    return None


@pytest.fixture(scope="session")
async def idempotency_store(pool: asyncpg.Pool) -> IdempotencyStore:
    return IdempotencyStore(pool, PEPPER)


@pytest.fixture
async def harness() -> Harness:
    return Harness()


@pytest.fixture
async def client(idempotency_store: IdempotencyStore, harness: Harness) -> AsyncIterator[Client]:
    middleware = idempotency_middleware(
        lambda _request: idempotency_store,
        lambda request: request.get(PRINCIPAL),
        to_problem=_to_problem,
    )
    app = web.Application(middlewares=[problem_middleware, fake_auth, middleware])
    for path, handler in {
        "/tokens": harness.tokens,
        "/invalid": harness.invalid,
        "/conflict": harness.conflict,
        "/boom": harness.boom,
        "/unavailable": harness.unavailable,
        "/slow": harness.slow,
        "/empty": harness.empty,
    }.items():
        app.router.add_post(path, handler)
    app.router.add_get("/tokens", harness.echo_get)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def _principal() -> str:
    return f"account-{uuid.uuid4()}"


def _headers(principal: str, key: str | None = None) -> dict[str, str]:
    headers = {"X-Test-Principal": principal, "Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


AGE_ROW = """
UPDATE idempotency_keys SET created_at = now() - $3::text::interval WHERE principal = $1 AND key = $2
"""


async def _age(pool: asyncpg.Pool, principal: str, key: str, age: str) -> None:
    await pool.execute(AGE_ROW, principal, key, age)


async def _row(pool: asyncpg.Pool, principal: str, key: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT * FROM idempotency_keys WHERE principal = $1 AND key = $2", principal, key
    )


async def test_a_retry_replays_the_stored_response_byte_for_byte(client: Client, harness: Harness) -> None:
    principal, key = _principal(), str(uuid.uuid4())
    first = await client.post(
        "/tokens", data=b'{"name": "ci", "expires_at": null}', headers=_headers(principal, key)
    )
    first_body = await first.read()
    # The same JSON, written differently, is the same request.
    again = await client.post(
        "/tokens", data=b'{"expires_at":null,"name":"ci"}', headers=_headers(principal, key)
    )

    assert first.status == again.status == 201
    assert await again.read() == first_body
    assert again.headers["Content-Type"] == first.headers["Content-Type"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["X-Request-Id"] != first.headers["X-Request-Id"]
    assert harness.calls["tokens"] == 1


async def test_handlers_see_the_key_and_derive_deterministic_ids(client: Client) -> None:
    principal, key = _principal(), "derive-me"
    response = await client.post("/tokens", json={"name": "x"}, headers=_headers(principal, key))
    assert (await response.json())["id"] == str(uuid.uuid5(uuid.NAMESPACE_URL, f"{principal}/{key}"))


async def test_the_stored_body_is_sealed(client: Client, pool: asyncpg.Pool) -> None:
    principal, key = _principal(), str(uuid.uuid4())
    response = await client.post("/tokens", json={"name": "secret"}, headers=_headers(principal, key))
    secret = (await response.json())["token"]
    row = await _row(pool, principal, key)
    assert row is not None
    assert row["state"] == "completed"
    assert row["response_status"] == 201
    assert row["completed_at"] is not None
    assert secret.encode() not in row["response_body"]
    assert b"spat_" not in row["response_body"]


async def test_same_key_with_another_request_is_a_422(client: Client, harness: Harness) -> None:
    principal, key = _principal(), str(uuid.uuid4())
    assert (await client.post("/tokens", json={"name": "a"}, headers=_headers(principal, key))).status == 201
    other_body = await client.post("/tokens", json={"name": "b"}, headers=_headers(principal, key))
    other_path = await client.post("/empty", json={"name": "a"}, headers=_headers(principal, key))
    for response in (other_body, other_path):
        assert response.status == 422
        body = await response.json()
        assert body["title"] == "Unprocessable Entity"
        assert "Idempotency-Key" in body["detail"]
        assert body["invalid_parameters"][0]["field"] == "Idempotency-Key"
        assert body["invalid_parameters"][0]["source"] == "header"
    assert harness.calls["tokens"] == 1
    assert "empty" not in harness.calls


async def test_keys_are_scoped_per_principal(client: Client, harness: Harness) -> None:
    key = str(uuid.uuid4())
    first = await client.post("/tokens", json={"name": "a"}, headers=_headers(_principal(), key))
    second = await client.post("/tokens", json={"name": "b"}, headers=_headers(_principal(), key))
    assert first.status == second.status == 201
    assert (await first.json())["id"] != (await second.json())["id"]
    assert harness.calls["tokens"] == 2


async def test_a_duplicate_while_the_first_is_running_is_a_409(client: Client, harness: Harness) -> None:
    principal, key = _principal(), str(uuid.uuid4())
    first = asyncio.ensure_future(client.post("/slow", json={}, headers=_headers(principal, key)))
    await asyncio.wait_for(harness.entered.wait(), 10)

    duplicate = await client.post("/slow", json={}, headers=_headers(principal, key))
    assert duplicate.status == 409
    body = await duplicate.json()
    assert body["detail"] == "a request with this Idempotency-Key is in progress"
    assert duplicate.headers["Retry-After"] == "1"

    harness.gate.set()
    done = await first
    assert done.status == 201
    replay = await client.post("/slow", json={}, headers=_headers(principal, key))
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert await replay.read() == await done.read()
    assert harness.calls["slow"] == 1


async def test_4xx_problems_are_stored_and_replayed(client: Client, harness: Harness) -> None:
    principal, key = _principal(), str(uuid.uuid4())
    first = await client.post("/invalid", json={}, headers=_headers(principal, key))
    again = await client.post("/invalid", json={}, headers=_headers(principal, key))
    assert first.status == again.status == 400
    assert await again.read() == await first.read()  # the first request's instance included
    assert again.headers["Content-Type"] == "application/problem+json"
    assert harness.calls["invalid"] == 1


async def test_domain_errors_mapped_by_to_problem_are_stored(client: Client, harness: Harness) -> None:
    principal, key = _principal(), str(uuid.uuid4())
    first = await client.post("/conflict", json={}, headers=_headers(principal, key))
    again = await client.post("/conflict", json={}, headers=_headers(principal, key))
    assert first.status == again.status == 409
    assert again.headers["Idempotent-Replayed"] == "true"
    assert harness.calls["conflict"] == 1


async def test_an_exception_releases_the_key_so_a_retry_runs(
    client: Client, harness: Harness, pool: asyncpg.Pool
) -> None:
    principal, key = _principal(), str(uuid.uuid4())
    failed = await client.post("/boom", json={}, headers=_headers(principal, key))
    assert failed.status == 500
    assert await _row(pool, principal, key) is None
    retried = await client.post("/boom", json={}, headers=_headers(principal, key))
    assert retried.status == 201
    assert "Idempotent-Replayed" not in retried.headers
    assert harness.calls["boom"] == 2


async def test_5xx_responses_are_not_stored(client: Client, harness: Harness, pool: asyncpg.Pool) -> None:
    principal, key = _principal(), str(uuid.uuid4())
    for _ in range(2):
        assert (await client.post("/unavailable", json={}, headers=_headers(principal, key))).status == 503
    assert harness.calls["unavailable"] == 2
    assert await _row(pool, principal, key) is None


async def test_a_201_without_body_is_replayed(client: Client, harness: Harness) -> None:
    principal, key = _principal(), str(uuid.uuid4())
    first = await client.post("/empty", json={}, headers=_headers(principal, key))
    again = await client.post("/empty", json={}, headers=_headers(principal, key))
    assert first.status == again.status == 201
    assert await again.read() == b""
    assert again.headers["Idempotent-Replayed"] == "true"
    assert harness.calls["empty"] == 1


async def test_expired_keys_are_ignored_and_overwritten(
    client: Client, harness: Harness, pool: asyncpg.Pool
) -> None:
    principal, key = _principal(), str(uuid.uuid4())
    await client.post("/tokens", json={"name": "a"}, headers=_headers(principal, key))
    await _age(pool, principal, key, "25 hours")
    other = await client.post("/tokens", json={"name": "b"}, headers=_headers(principal, key))
    assert other.status == 201
    assert "Idempotent-Replayed" not in other.headers
    assert harness.calls["tokens"] == 2
    row = await _row(pool, principal, key)
    assert row is not None and row["state"] == "completed"


async def test_an_abandoned_claim_is_taken_over(
    client: Client, harness: Harness, pool: asyncpg.Pool, idempotency_store: IdempotencyStore
) -> None:
    principal, key = _principal(), str(uuid.uuid4())
    body = b'{"name":"a"}'
    fingerprint = request_fingerprint("POST", "/tokens", body)
    assert isinstance(await idempotency_store.claim(principal, key, fingerprint), Claimed)
    blocked = await client.post("/tokens", data=body, headers=_headers(principal, key))
    assert blocked.status == 409

    await _age(pool, principal, key, "2 minutes")
    taken = await client.post("/tokens", data=body, headers=_headers(principal, key))
    assert taken.status == 201
    assert harness.calls["tokens"] == 1


async def test_the_loser_of_a_takeover_cannot_complete(
    pool: asyncpg.Pool, idempotency_store: IdempotencyStore
) -> None:
    principal, key, fingerprint = _principal(), str(uuid.uuid4()), "f" * 64
    first = await idempotency_store.claim(principal, key, fingerprint)
    await _age(pool, principal, key, "2 minutes")
    second = await idempotency_store.claim(principal, key, fingerprint)
    assert isinstance(first, Claimed)
    assert isinstance(second, Claimed)
    stored = StoredResponse(201, "application/json", b"{}")
    assert not await idempotency_store.complete(principal, key, fingerprint, first, stored)
    assert await idempotency_store.complete(principal, key, fingerprint, second, stored)


async def test_requests_without_key_principal_or_post_are_not_recorded(
    client: Client, harness: Harness, pool: asyncpg.Pool
) -> None:
    principal = _principal()
    for _ in range(2):
        assert (await client.post("/tokens", json={"name": "a"}, headers=_headers(principal))).status == 201
        anonymous = {"Idempotency-Key": "anon", "Content-Type": "application/json"}
        assert (await client.post("/tokens", json={"name": "a"}, headers=anonymous)).status == 201
        assert (await client.get("/tokens", headers=_headers(principal, "get-key"))).status == 200
    assert harness.calls == {"tokens": 4, "get": 2}
    assert await pool.fetchval("SELECT count(*) FROM idempotency_keys WHERE principal = $1", principal) == 0


@pytest.mark.parametrize(
    ("key", "rule"),
    [("", "min_length"), ("   ", "min_length"), ("k" * 256, "max_length")],
)
async def test_invalid_keys_are_a_400_naming_the_header(
    client: Client, harness: Harness, key: str, rule: str
) -> None:
    response = await client.post("/tokens", json={"name": "a"}, headers=_headers(_principal(), key))
    assert response.status == 400
    [problem] = (await response.json())["invalid_parameters"]
    assert (problem["field"], problem["rule"], problem["source"]) == ("Idempotency-Key", rule, "header")
    assert "tokens" not in harness.calls


async def test_a_255_character_key_is_fine(client: Client) -> None:
    response = await client.post("/tokens", json={"name": "a"}, headers=_headers(_principal(), "k" * 255))
    assert response.status == 201


async def test_no_store_yet_is_a_503(harness: Harness) -> None:
    app = web.Application(
        middlewares=[
            problem_middleware,
            fake_auth,
            idempotency_middleware(lambda _r: None, lambda r: r.get(PRINCIPAL)),
        ]
    )
    app.router.add_post("/tokens", harness.tokens)
    async with TestClient(TestServer(app)) as test_client:
        response = await test_client.post("/tokens", json={"name": "a"}, headers=_headers(_principal(), "k"))
        assert response.status == 503


async def test_purge_deletes_expired_rows(pool: asyncpg.Pool, idempotency_store: IdempotencyStore) -> None:
    principal = _principal()
    for key in ("old", "new"):
        await idempotency_store.claim(principal, key, "f" * 64)
    await _age(pool, principal, "old", "2 days")
    assert await idempotency_store.purge_expired() >= 1
    keys = await pool.fetch("SELECT key FROM idempotency_keys WHERE principal = $1", principal)
    assert [r["key"] for r in keys] == ["new"]


async def test_a_store_with_another_pepper_cannot_read_stored_bodies(
    client: Client, pool: asyncpg.Pool
) -> None:
    principal, key = _principal(), str(uuid.uuid4())
    body = b'{"name":"a"}'
    await client.post("/tokens", data=body, headers=_headers(principal, key))
    intruder = IdempotencyStore(pool, b"another pepper entirely, also long")
    with pytest.raises(ValueError, match="does not belong"):
        await intruder.claim(principal, key, request_fingerprint("POST", "/tokens", body))


def test_the_cipher_binds_bodies_to_their_row() -> None:
    cipher = ResponseCipher(PEPPER)
    sealed = cipher.seal(b"secret", b"row-1")
    assert cipher.open(sealed, b"row-1") == b"secret"
    assert sealed != cipher.seal(b"secret", b"row-1")  # a fresh nonce each time
    with pytest.raises(ValueError, match="does not belong"):
        cipher.open(sealed, b"row-2")
    with pytest.raises(ValueError, match="non-empty"):
        ResponseCipher(b"")


def test_fingerprints_cover_method_path_and_canonical_body() -> None:
    base = request_fingerprint("POST", "/v3/system-accounts", b'{"a":1,"b":[1,2]}')
    assert base == request_fingerprint("post", "/v3/system-accounts", b'{ "b": [1, 2], "a": 1 }')
    assert base != request_fingerprint("POST", "/v3/system-accounts", b'{"a":1,"b":[2,1]}')
    assert base != request_fingerprint("POST", "/v3/system-accounts?x=1", b'{"a":1,"b":[1,2]}')
    assert base != request_fingerprint("PUT", "/v3/system-accounts", b'{"a":1,"b":[1,2]}')
    assert request_fingerprint("POST", "/x", b"") == request_fingerprint("POST", "/x", b"{}")
    assert request_fingerprint("POST", "/x", b"not json") != request_fingerprint("POST", "/x", b"not json!")


def test_idempotency_key_reads_the_header() -> None:
    assert idempotency_key(make_mocked_request("POST", "/", headers={"Idempotency-Key": "abc"})) == "abc"
    assert idempotency_key(make_mocked_request("POST", "/")) is None
    with pytest.raises(BadRequest):
        idempotency_key(make_mocked_request("POST", "/", headers={"Idempotency-Key": "x" * 256}))
