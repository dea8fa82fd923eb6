"""Idempotency keys through the dispatcher, on real PostgreSQL: the claim of a key per credential
and kind of command; another command under a key (422); a run in progress (409); 24 h expiry;
takeover of abandoned claims. Nothing is replayed: every retry runs its handler, with the same
idempotency scope. The handlers here are fakes that count their runs; the HTTP side is the real
header parsing and problem mapping."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from hypothesis import given
from hypothesis import strategies as st

from services.api import state
from services.api.context import execute
from services.api.domain_errors import domain_error_middleware
from services.api.idempotency import idempotency_key
from services.api.parsing import read_body
from services.api.problems import BadRequest, problem_middleware
from services.authorization import SYSTEM, Actor, MissingRight, Right, SystemActor
from services.authorization import Grant as RoleGrant
from services.commands import CommandContext, Invalid, Outcome, Unchanged
from services.dependencies import Dependencies
from services.directory import StreamDirectory
from services.dispatch import Dispatcher, Handler
from services.idempotency import IdempotencyHousekeeping, IdempotencyStore
from services.idempotency_claims import Claimed, command_fingerprint
from services.memory_store import MemoryEventStore
from services.policy import TokenPolicy
from services.roles.catalogue import load_catalogue

CREDENTIAL = web.RequestKey("test.credential", str)
Client = TestClient[web.Request, web.Application]
T0 = datetime(2025, 6, 1, tzinfo=UTC)


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    expires_at: str | None = None


class MakeThing(msgspec.Struct, frozen=True, kw_only=True, tag="test.tokens"):
    """The command of ``POST /tokens``: the body and the query it was sent with."""

    name: str
    expires_at: str | None = None
    query: str = ""


class Other(msgspec.Struct, frozen=True, kw_only=True, tag="test.other"):
    name: str


class Invalidate(msgspec.Struct, frozen=True, tag="test.invalid"):
    pass


class Boom(msgspec.Struct, frozen=True, tag="test.boom"):
    pass


class Slow(msgspec.Struct, frozen=True, tag="test.slow"):
    pass


class Harness:
    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    def count(self, name: str) -> int:
        self.calls[name] = self.calls.get(name, 0) + 1
        return self.calls[name]

    def rights(self) -> dict[type, Right]:
        """What a caller needs to send each of the harness's commands."""
        return {kind: Right.TOKENS_WRITE for kind in self.handlers()}

    def handlers(self) -> dict[type, Handler]:
        return {
            MakeThing: self.tokens,
            Other: self.other,
            Invalidate: self.invalid,
            Boom: self.boom,
            Slow: self.slow,
        }

    async def tokens(
        self, _deps: Dependencies, ctx: CommandContext, _actor: Actor | SystemActor, command: MakeThing
    ) -> Outcome[Any]:
        scope = ctx.idempotency_key
        token_id = uuid.uuid5(uuid.NAMESPACE_URL, scope) if scope else uuid.uuid4()
        body = {"id": str(token_id), "name": command.name, "call": self.count("tokens"), "scope": scope}
        return Outcome(body, None)

    async def invalid(
        self, _deps: Dependencies, _ctx: CommandContext, _actor: object, _c: object
    ) -> Outcome[Any]:
        self.count("invalid")
        raise Invalid("name", "cannot be blank", "min_length")

    async def boom(
        self, _deps: Dependencies, _ctx: CommandContext, _actor: object, _c: object
    ) -> Outcome[Any]:
        if self.count("boom") == 1:
            raise RuntimeError("transient failure")
        return Outcome({"ok": True}, None)

    async def slow(
        self, _deps: Dependencies, _ctx: CommandContext, _actor: object, _c: object
    ) -> Outcome[Any]:
        self.entered.set()
        await self.gate.wait()
        return Outcome({"call": self.count("slow")}, None)

    async def other(
        self, _deps: Dependencies, ctx: CommandContext, _actor: object, _command: Other
    ) -> Outcome[Any]:
        self.count("other")
        return Outcome({"scope": ctx.idempotency_key}, None)

    async def read(self, _request: web.Request) -> web.Response:
        return web.json_response({"call": self.count("read"), "scope": None})


@web.middleware
async def fake_auth(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> Any:
    """Stands in for authentication: ``X-Test-Credential`` is the caller's token id."""
    credential = request.headers.get("X-Test-Credential")
    if credential:
        request[CREDENTIAL] = credential
    return await handler(request)


def _deps() -> Dependencies:
    store = MemoryEventStore()
    return Dependencies(
        store=store,
        directory=StreamDirectory(store),
        catalogue=load_catalogue(None),
        token_policy=TokenPolicy(max_lifetime=timedelta(days=365), allow_non_expiring=True),
        pepper=b"idempotency-test-pepper",
        organization_id="00000000-0000-0000-0000-0000000000aa",
    )


def _route(dispatcher: Dispatcher, command_of: Callable[[web.Request], Awaitable[object]]) -> Any:
    async def route(request: web.Request) -> web.Response:
        key = idempotency_key(request)
        command = await command_of(request)
        ctx = CommandContext(now=T0, actor_token_id=request.get(CREDENTIAL))
        outcome = await dispatcher.dispatch(command, SYSTEM, ctx, key)
        return web.json_response(outcome.state, status=201)

    return route


async def _make_thing(request: web.Request) -> MakeThing:
    body = await read_body(request, TokenRequest)
    return MakeThing(name=body.name, expires_at=body.expires_at, query=request.query_string)


async def _other(request: web.Request) -> Other:
    return Other(name=(await read_body(request, TokenRequest)).name)


def _constant(command: object) -> Callable[[web.Request], Awaitable[object]]:
    async def read(_request: web.Request) -> object:
        return command

    return read


@pytest.fixture(scope="session")
async def idempotency_store(pool: asyncpg.Pool) -> IdempotencyStore:
    return IdempotencyStore(pool)


@pytest.fixture
async def harness() -> Harness:
    return Harness()


@pytest.fixture
async def client(idempotency_store: IdempotencyStore, harness: Harness) -> AsyncIterator[Client]:
    dispatcher = Dispatcher(
        _deps(), claims=idempotency_store, handlers=harness.handlers(), rights=harness.rights()
    )
    app = web.Application(middlewares=[problem_middleware, domain_error_middleware, fake_auth])
    for path, command_of in {
        "/tokens": _make_thing,
        "/invalid": _constant(Invalidate()),
        "/boom": _constant(Boom()),
        "/slow": _constant(Slow()),
        "/other": _other,
    }.items():
        app.router.add_post(path, _route(dispatcher, command_of))
    app.router.add_post("/read", harness.read)
    app.router.add_get("/tokens", harness.read)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def _credential() -> str:
    return str(uuid.uuid4())


def _scope(credential: str, tag: str = "test.tokens") -> str:
    return f"{credential} {tag}"


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
        "unchanged_stream",
        "unchanged_version",
    }  # no response (and so no secret) is kept; what a no-op was decided on, only for a no-op
    assert row["unchanged_stream"] is None and row["unchanged_version"] is None


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
    row = await _row(pool, _scope(credential, "test.boom"), key)
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
    assert row["request_fingerprint"] == command_fingerprint(MakeThing(name="b"))


async def test_an_abandoned_claim_is_taken_over(
    client: Client, harness: Harness, pool: asyncpg.Pool, idempotency_store: IdempotencyStore
) -> None:
    credential, key = _credential(), str(uuid.uuid4())
    body = b'{"name":"a"}'
    fingerprint = command_fingerprint(MakeThing(name="a"))
    assert isinstance(await idempotency_store.claim(_scope(credential), key, fingerprint), Claimed)
    blocked = await client.post("/tokens", data=body, headers=_headers(credential, key))
    assert blocked.status == 409

    await _age(pool, _scope(credential), key, "2 minutes")
    taken = await client.post("/tokens", data=body, headers=_headers(credential, key))
    assert taken.status == 201
    assert harness.calls["tokens"] == 1


class Rightless(msgspec.Struct, frozen=True):
    """An authenticated caller whose token carries no right."""

    account_id: str = "00000000-0000-0000-0000-0000000000bb"
    scopes: tuple[str, ...] | None = ()
    roles: tuple[RoleGrant, ...] = ()
    organization_admin: bool = False


async def test_a_refused_actor_never_claims_a_key(
    harness: Harness, pool: asyncpg.Pool, idempotency_store: IdempotencyStore
) -> None:
    """Authorisation comes first: a caller refused the command neither runs it nor takes its key."""
    dispatcher = Dispatcher(
        _deps(), claims=idempotency_store, handlers=harness.handlers(), rights=harness.rights()
    )
    credential, key = _credential(), str(uuid.uuid4())
    ctx = CommandContext(now=T0, actor_token_id=credential)
    for _ in range(2):
        with pytest.raises(MissingRight):
            await dispatcher.dispatch(MakeThing(name="a"), Rightless(), ctx, key)
    assert await _row(pool, _scope(credential), key) is None
    assert "tokens" not in harness.calls


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


async def test_no_runtime_yet_is_a_503(harness: Harness) -> None:
    """While the service is starting there is no dispatcher, and so no claims: a command is a 503."""
    app = web.Application(middlewares=[problem_middleware, domain_error_middleware, fake_auth])
    state.install(app)

    async def route(request: web.Request) -> web.Response:
        await execute(request, await _make_thing(request))
        return web.json_response({}, status=201)

    app.router.add_post("/tokens", route)
    async with TestClient(TestServer(app)) as test_client:
        response = await test_client.post("/tokens", json={"name": "a"}, headers=_headers(_credential(), "k"))
        assert response.status == 503
    assert "tokens" not in harness.calls


async def test_purge_deletes_expired_rows(pool: asyncpg.Pool, idempotency_store: IdempotencyStore) -> None:
    scope = _scope(_credential())
    for key in ("old", "new"):
        await idempotency_store.claim(scope, key, "f" * 64)
    await _age(pool, scope, "old", "2 days")
    assert await idempotency_store.purge_expired() >= 1
    keys = await pool.fetch("SELECT key FROM idempotency_keys WHERE scope = $1", scope)
    assert [r["key"] for r in keys] == ["new"]


async def test_a_run_that_changed_nothing_is_handed_to_its_retries_until_the_key_expires(
    pool: asyncpg.Pool, idempotency_store: IdempotencyStore
) -> None:
    """What a no-op's answer was decided on outlives its run: every later claim of the key with the
    same fingerprint gets it back, a run that did change something records none, and an expired
    key forgets it."""
    scope, unchanged = _scope(_credential()), Unchanged("account-x", 3)
    first = await idempotency_store.claim(scope, "k", "f" * 64)
    assert isinstance(first, Claimed) and first.unchanged is None
    await idempotency_store.end(scope, "k", first, unchanged)
    for _ in range(2):
        again = await idempotency_store.claim(scope, "k", "f" * 64)
        assert isinstance(again, Claimed) and again.unchanged == unchanged
        await idempotency_store.end(scope, "k", again, again.unchanged)
    await _age(pool, scope, "k", "2 days")
    expired = await idempotency_store.claim(scope, "k", "f" * 64)
    assert isinstance(expired, Claimed) and expired.unchanged is None
    await idempotency_store.end(scope, "k", expired)
    after = await idempotency_store.claim(scope, "k", "f" * 64)
    assert isinstance(after, Claimed) and after.unchanged is None


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


class Grant(msgspec.Struct, frozen=True, kw_only=True, tag="test.grant"):
    names: frozenset[str]
    entity: str | None = None


class Revoke(msgspec.Struct, frozen=True, kw_only=True, tag="test.revoke"):
    names: frozenset[str]
    entity: str | None = None


names = st.frozensets(st.text(max_size=8), max_size=6)
entities = st.none() | st.text(max_size=8)


@given(names, entities, names, entities)
def test_fingerprints_name_the_command_and_nothing_else(
    first: frozenset[str], first_entity: str | None, second: frozenset[str], second_entity: str | None
) -> None:
    """Two commands share a fingerprint exactly when they are the same command (same kind, same
    values); a set's order, which varies between processes, never matters."""
    one, two = Grant(names=first, entity=first_entity), Grant(names=second, entity=second_entity)
    assert (command_fingerprint(one) == command_fingerprint(two)) == (one == two)
    assert command_fingerprint(one) == command_fingerprint(
        Grant(names=frozenset(sorted(first)), entity=first_entity)
    )
    assert command_fingerprint(one) != command_fingerprint(Revoke(names=first, entity=first_entity))


def test_idempotency_key_reads_the_header() -> None:
    assert idempotency_key(make_mocked_request("POST", "/", headers={"Idempotency-Key": "abc"})) == "abc"
    assert idempotency_key(make_mocked_request("POST", "/", headers={"Idempotency-Key": "clé ✓"})) == "clé ✓"
    assert idempotency_key(make_mocked_request("POST", "/")) is None
    for bad in ("x" * 256, "a\x00b", "a\x1bb", "a\u200bb"):
        with pytest.raises(BadRequest):
            idempotency_key(make_mocked_request("POST", "/", headers={"Idempotency-Key": bad}))
