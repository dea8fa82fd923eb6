"""Idempotency-Key on real PostgreSQL: the claim of a key per credential, method and route; another
request under a key (422); a run in progress (409); 24 h expiry; takeover of abandoned claims. Nothing
is replayed from here: every retry runs its route, with the same command scope."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from services.api.idempotency import command_scope, idempotency_key, idempotency_middleware
from services.api.parsing import read_body
from services.api.problems import BadRequest, InvalidParameter, problem_middleware
from services.idempotency import Claimed, IdempotencyHousekeeping, IdempotencyStore, request_fingerprint

CREDENTIAL = web.RequestKey("test.credential", str)
Client = TestClient[web.Request, web.Application]


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
        scope = command_scope(request)
        token_id = uuid.uuid5(uuid.NAMESPACE_URL, scope) if scope else uuid.uuid4()
        return web.json_response(
            {"id": str(token_id), "name": body.name, "call": self.count("tokens"), "scope": scope},
            status=201,
        )

    async def invalid(self, _request: web.Request) -> web.Response:
        self.count("invalid")
        raise BadRequest([InvalidParameter("name", "cannot be blank", "min_length", "body", minimum=1)])

    async def boom(self, _request: web.Request) -> web.Response:
        if self.count("boom") == 1:
            raise RuntimeError("transient failure")
        return web.json_response({"ok": True}, status=201)

    async def slow(self, _request: web.Request) -> web.Response:
        self.entered.set()
        await self.gate.wait()
        return web.json_response({"call": self.count("slow")}, status=201)

    async def other(self, request: web.Request) -> web.Response:
        self.count("other")
        return web.json_response({"scope": command_scope(request)}, status=201)

    async def read(self, request: web.Request) -> web.Response:
        return web.json_response({"call": self.count("read"), "scope": command_scope(request)})


@web.middleware
async def fake_auth(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> Any:
    credential = request.headers.get("X-Test-Credential")
    if credential:
        request[CREDENTIAL] = credential
    return await handler(request)


def _is_command(request: web.Request) -> bool:
    return request.method == "POST" and request.path != "/read"


@pytest.fixture(scope="session")
async def idempotency_store(pool: asyncpg.Pool) -> IdempotencyStore:
    return IdempotencyStore(pool)


@pytest.fixture
async def harness() -> Harness:
    return Harness()


@pytest.fixture
async def client(idempotency_store: IdempotencyStore, harness: Harness) -> AsyncIterator[Client]:
    middleware = idempotency_middleware(
        lambda _request: idempotency_store, lambda request: request.get(CREDENTIAL), _is_command
    )
    app = web.Application(middlewares=[problem_middleware, fake_auth, middleware])
    for path, handler in {
        "/tokens": harness.tokens,
        "/invalid": harness.invalid,
        "/boom": harness.boom,
        "/slow": harness.slow,
        "/other": harness.other,
        "/read": harness.read,
    }.items():
        app.router.add_post(path, handler)
    app.router.add_get("/tokens", harness.read)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def _credential() -> str:
    return str(uuid.uuid4())


def _scope(credential: str, route: str = "/tokens") -> str:
    return f"{credential} POST {route}"


def _headers(credential: str, key: str | None = None) -> dict[str, str]:
    headers = {"X-Test-Credential": credential, "Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


AGE_ROW = """
UPDATE idempotency_keys SET created_at = created_at - $3::text::interval,
    claimed_at = claimed_at - $3::text::interval
WHERE scope = $1 AND key = $2
"""


async def _age(pool: asyncpg.Pool, scope: str, key: str, age: str) -> None:
    await pool.execute(AGE_ROW, scope, key, age)


async def _row(pool: asyncpg.Pool, scope: str, key: str) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT * FROM idempotency_keys WHERE scope = $1 AND key = $2", scope, key)


async def test_every_retry_runs_the_route_with_the_same_command_scope(
    client: Client, harness: Harness, pool: asyncpg.Pool
) -> None:
    credential, key = _credential(), str(uuid.uuid4())
    first = await client.post(
        "/tokens", data=b'{"name": "ci", "expires_at": null}', headers=_headers(credential, key)
    )
    # The same JSON, written differently, is the same request.
    again = await client.post(
        "/tokens", data=b'{"expires_at":null,"name":"ci"}', headers=_headers(credential, key)
    )

    assert first.status == again.status == 201
    first_body, again_body = await first.json(), await again.json()
    assert first_body["scope"] is not None
    assert (again_body["id"], again_body["scope"]) == (first_body["id"], first_body["scope"])
    assert harness.calls["tokens"] == 2  # nothing replayed: the route answers every time
    row = await _row(pool, _scope(credential), key)
    assert row is not None and row["state"] == "completed" and row["completed_at"] is not None
    assert set(row.keys()) == {
        "scope",
        "key",
        "request_fingerprint",
        "state",
        "claim_id",
        "created_at",
        "completed_at",
        "claimed_at",
    }  # no response (and so no secret) is kept


async def test_same_key_with_another_request_is_a_422(client: Client, harness: Harness) -> None:
    credential, key = _credential(), str(uuid.uuid4())
    assert (await client.post("/tokens", json={"name": "a"}, headers=_headers(credential, key))).status == 201
    other_body = await client.post("/tokens", json={"name": "b"}, headers=_headers(credential, key))
    other_query = await client.post("/tokens?x=1", json={"name": "a"}, headers=_headers(credential, key))
    for response in (other_body, other_query):
        assert response.status == 422
        body = await response.json()
        assert body["title"] == "Unprocessable Entity"
        assert "Idempotency-Key" in body["detail"]
        assert body["invalid_parameters"][0]["field"] == "Idempotency-Key"
        assert body["invalid_parameters"][0]["source"] == "header"
    assert harness.calls["tokens"] == 1


async def test_keys_are_scoped_per_credential(client: Client, harness: Harness) -> None:
    """A sibling credential using the same key and request runs a request of its own."""
    key = str(uuid.uuid4())
    first = await client.post("/tokens", json={"name": "a"}, headers=_headers(_credential(), key))
    second = await client.post("/tokens", json={"name": "a"}, headers=_headers(_credential(), key))
    assert first.status == second.status == 201
    first_body, second_body = await first.json(), await second.json()
    assert first_body["id"] != second_body["id"]
    assert first_body["scope"] != second_body["scope"]
    assert harness.calls["tokens"] == 2


async def test_keys_are_scoped_per_route(client: Client, harness: Harness) -> None:
    credential, key = _credential(), str(uuid.uuid4())
    tokens = await client.post("/tokens", json={"name": "a"}, headers=_headers(credential, key))
    other = await client.post("/other", json={"name": "a"}, headers=_headers(credential, key))
    assert tokens.status == other.status == 201
    assert (await tokens.json())["scope"] != (await other.json())["scope"]


async def test_a_duplicate_while_the_first_is_running_is_a_409(client: Client, harness: Harness) -> None:
    credential, key = _credential(), str(uuid.uuid4())
    first = asyncio.ensure_future(client.post("/slow", json={}, headers=_headers(credential, key)))
    await asyncio.wait_for(harness.entered.wait(), 10)

    duplicate = await client.post("/slow", json={}, headers=_headers(credential, key))
    assert duplicate.status == 409
    body = await duplicate.json()
    assert body["detail"] == "a request with this Idempotency-Key is in progress"
    assert duplicate.headers["Retry-After"] == "1"

    harness.gate.set()
    assert (await first).status == 201
    retried = await client.post("/slow", json={}, headers=_headers(credential, key))
    assert retried.status == 201
    assert harness.calls["slow"] == 2


async def test_a_refused_request_is_decided_again(client: Client, harness: Harness) -> None:
    credential, key = _credential(), str(uuid.uuid4())
    first = await client.post("/invalid", json={}, headers=_headers(credential, key))
    again = await client.post("/invalid", json={}, headers=_headers(credential, key))
    assert first.status == again.status == 400
    assert again.headers["Content-Type"] == "application/problem+json"
    assert harness.calls["invalid"] == 2


async def test_an_exception_ends_the_run_so_a_retry_runs(
    client: Client, harness: Harness, pool: asyncpg.Pool
) -> None:
    credential, key = _credential(), str(uuid.uuid4())
    failed = await client.post("/boom", json={}, headers=_headers(credential, key))
    assert failed.status == 500
    row = await _row(pool, _scope(credential, "/boom"), key)
    assert row is not None and row["state"] == "completed"
    retried = await client.post("/boom", json={}, headers=_headers(credential, key))
    assert retried.status == 201
    assert harness.calls["boom"] == 2


async def test_expired_keys_are_ignored_and_overwritten(
    client: Client, harness: Harness, pool: asyncpg.Pool
) -> None:
    credential, key = _credential(), str(uuid.uuid4())
    await client.post("/tokens", json={"name": "a"}, headers=_headers(credential, key))
    await _age(pool, _scope(credential), key, "25 hours")
    other = await client.post("/tokens", json={"name": "b"}, headers=_headers(credential, key))
    assert other.status == 201
    assert harness.calls["tokens"] == 2
    row = await _row(pool, _scope(credential), key)
    assert row is not None and row["state"] == "completed"
    assert row["request_fingerprint"] == request_fingerprint("POST", "/tokens", b'{"name":"b"}')


async def test_an_abandoned_claim_is_taken_over(
    client: Client, harness: Harness, pool: asyncpg.Pool, idempotency_store: IdempotencyStore
) -> None:
    credential, key = _credential(), str(uuid.uuid4())
    body = b'{"name":"a"}'
    fingerprint = request_fingerprint("POST", "/tokens", body)
    assert isinstance(await idempotency_store.claim(_scope(credential), key, fingerprint), Claimed)
    blocked = await client.post("/tokens", data=body, headers=_headers(credential, key))
    assert blocked.status == 409

    await _age(pool, _scope(credential), key, "2 minutes")
    taken = await client.post("/tokens", data=body, headers=_headers(credential, key))
    assert taken.status == 201
    assert harness.calls["tokens"] == 1


async def test_the_loser_of_a_takeover_cannot_complete(
    pool: asyncpg.Pool, idempotency_store: IdempotencyStore
) -> None:
    scope, key, fingerprint = _scope(_credential()), str(uuid.uuid4()), "f" * 64
    first = await idempotency_store.claim(scope, key, fingerprint)
    await _age(pool, scope, key, "2 minutes")
    second = await idempotency_store.claim(scope, key, fingerprint)
    assert isinstance(first, Claimed)
    assert isinstance(second, Claimed)
    assert not await idempotency_store.complete(scope, key, first)
    assert await idempotency_store.complete(scope, key, second)


async def test_reads_and_requests_without_key_or_credential_are_not_recorded(
    client: Client, harness: Harness, pool: asyncpg.Pool
) -> None:
    """A POST that is a read (as introspection is) and a GET are never under a key: they run every
    time, with no command scope."""
    credential = _credential()
    for _ in range(2):
        assert (await client.post("/tokens", json={"name": "a"}, headers=_headers(credential))).status == 201
        anonymous = {"Idempotency-Key": "anon", "Content-Type": "application/json"}
        assert (await client.post("/tokens", json={"name": "a"}, headers=anonymous)).status == 201
        for method in ("GET", "POST"):
            path = "/tokens" if method == "GET" else "/read"
            read = await client.request(method, path, headers=_headers(credential, "read-key"))
            assert read.status == 200 and (await read.json())["scope"] is None
    assert harness.calls == {"tokens": 4, "read": 4}
    count = "SELECT count(*) FROM idempotency_keys WHERE scope LIKE $1 || '%'"
    assert await pool.fetchval(count, credential) == 0


@pytest.mark.parametrize(
    ("key", "rule"),
    [("", "min_length"), ("   ", "min_length"), ("k" * 256, "max_length")],
)
async def test_invalid_keys_are_a_400_naming_the_header(
    client: Client, harness: Harness, key: str, rule: str
) -> None:
    response = await client.post("/tokens", json={"name": "a"}, headers=_headers(_credential(), key))
    assert response.status == 400
    [problem] = (await response.json())["invalid_parameters"]
    assert (problem["field"], problem["rule"], problem["source"]) == ("Idempotency-Key", rule, "header")
    assert "tokens" not in harness.calls


async def test_a_255_character_key_is_fine(client: Client) -> None:
    response = await client.post("/tokens", json={"name": "a"}, headers=_headers(_credential(), "k" * 255))
    assert response.status == 201


async def test_no_store_yet_is_a_503(harness: Harness) -> None:
    app = web.Application(
        middlewares=[
            problem_middleware,
            fake_auth,
            idempotency_middleware(lambda _r: None, lambda r: r.get(CREDENTIAL), _is_command),
        ]
    )
    app.router.add_post("/tokens", harness.tokens)
    async with TestClient(TestServer(app)) as test_client:
        response = await test_client.post("/tokens", json={"name": "a"}, headers=_headers(_credential(), "k"))
        assert response.status == 503


async def test_purge_deletes_expired_rows(pool: asyncpg.Pool, idempotency_store: IdempotencyStore) -> None:
    scope = _scope(_credential())
    for key in ("old", "new"):
        await idempotency_store.claim(scope, key, "f" * 64)
    await _age(pool, scope, "old", "2 days")
    assert await idempotency_store.purge_expired() >= 1
    keys = await pool.fetch("SELECT key FROM idempotency_keys WHERE scope = $1", scope)
    assert [r["key"] for r in keys] == ["new"]


async def test_the_housekeeping_worker_deletes_expired_claims(pool: asyncpg.Pool) -> None:
    """The periodic purge runs on its own (first at start): an expired claim is gone without anyone
    calling ``purge_expired``, a live one stays."""
    store = IdempotencyStore(pool)
    scope = _scope(_credential())
    for key in ("old", "new"):
        await store.claim(scope, key, "f" * 64)
    await _age(pool, scope, "old", "2 days")
    housekeeping = IdempotencyHousekeeping(store, interval=0.01)
    await housekeeping.start()
    try:
        while await _row(pool, scope, "old") is not None:
            await asyncio.sleep(0.01)
    finally:
        await housekeeping.stop()
    assert await _row(pool, scope, "old") is None
    assert await _row(pool, scope, "new") is not None


def test_fingerprints_cover_method_path_and_canonical_body() -> None:
    base = request_fingerprint("POST", "/v3/system-accounts", b'{"a":1,"b":[1,2]}')
    assert base == request_fingerprint("post", "/v3/system-accounts", b'{ "b": [1, 2], "a": 1 }')
    assert base != request_fingerprint("POST", "/v3/system-accounts", b'{"a":1,"b":[2,1]}')
    assert base != request_fingerprint("POST", "/v3/system-accounts?x=1", b'{"a":1,"b":[1,2]}')
    assert base != request_fingerprint("PUT", "/v3/system-accounts", b'{"a":1,"b":[1,2]}')
    assert request_fingerprint("POST", "/x", b"") == request_fingerprint("POST", "/x", b"{}")
    assert request_fingerprint("POST", "/x", b"not json") != request_fingerprint("POST", "/x", b"not json!")


def test_fingerprints_of_any_body_and_path_are_total() -> None:
    """Nesting too deep to re-encode and paths with undecodable bytes still have a fingerprint."""
    deep = b"[" * 30_000 + b"]" * 30_000
    assert request_fingerprint("POST", "/x", deep) != request_fingerprint("POST", "/x", b"[]")
    assert request_fingerprint("POST", "/x\udcff", b"{}") != request_fingerprint("POST", "/x", b"{}")


def test_idempotency_key_reads_the_header() -> None:
    assert idempotency_key(make_mocked_request("POST", "/", headers={"Idempotency-Key": "abc"})) == "abc"
    assert idempotency_key(make_mocked_request("POST", "/", headers={"Idempotency-Key": "clé ✓"})) == "clé ✓"
    assert idempotency_key(make_mocked_request("POST", "/")) is None
    for bad in ("x" * 256, "a\x00b", "a\x1bb", "a\u200bb"):
        with pytest.raises(BadRequest):
            idempotency_key(make_mocked_request("POST", "/", headers={"Idempotency-Key": bad}))
