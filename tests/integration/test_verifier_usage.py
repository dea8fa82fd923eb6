"""Usage recording and sliding expiry (real PostgreSQL), and the introspection endpoint over HTTP."""

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from events.tokens import TokenExtended, TokenRevoked, TokenUsed
from services.api.introspection import add_routes
from services.api.problems import problem_middleware
from services.api.state import CLOCK, USAGE, VERIFIER, Late
from services.auth.principal import Principal, Rejection
from services.auth.usage import UsageRecorder
from services.auth.verifier import TokenVerifier
from services.eventstore import PostgresEventStore
from services.ports import AppendResult, StreamAppend
from services.tokens.secrets import generate_secret
from services.tokens.usage_model import extended_event_id, used_event_id
from tests.integration.test_verifier_support import World, dispatcher_over, open_world, utc_now


@pytest.fixture
async def world(empty_database: str) -> AsyncIterator[World]:
    async with open_world(empty_database) as world:
        yield world


class CountingStore(PostgresEventStore):
    """The real store, counting append_many calls; can lose the answer of the next N appends
    (the commit happens, the caller sees an error), as a dropped connection would."""

    def __init__(self, store: PostgresEventStore) -> None:
        super().__init__(store._pool)
        self.calls = 0
        self.lose_answers = 0

    async def append_many(self, appends: Sequence[StreamAppend], *args, **kwargs) -> AppendResult:  # type: ignore[no-untyped-def]
        self.calls += 1
        result = await super().append_many(appends, *args, **kwargs)
        if self.lose_answers:
            self.lose_answers -= 1
            raise ConnectionResetError("answer lost")
        return result


async def principal_for(world: World, verifier: TokenVerifier, **issue: Any) -> Principal:
    return (await issued(world, verifier, **issue))[0]


async def issued(world: World, verifier: TokenVerifier, **issue: Any) -> tuple[Principal, str]:
    """A new token, verified once: its principal and its secret."""
    account = await world.account()
    token = await world.issue(account, **issue)
    await world.settle(verifier)
    principal = await verifier.verify(token.secret, utc_now())
    assert isinstance(principal, Principal), principal
    return principal, token.secret


async def stream_events(world: World, stream_id: str) -> list[object]:
    return [e.event for e in await world.store.read_stream(stream_id)]


# -- token.used --------------------------------------------------------------------------------------


async def test_use_is_throttled_to_one_event_per_token_per_window(world: World) -> None:
    verifier = await world.verifier()
    principal = await principal_for(world, verifier)
    recorder = UsageRecorder(dispatcher_over(world.store), throttle_seconds=60)
    t0 = utc_now()
    for seconds in (0, 1, 30, 59.9):
        recorder.record(principal, t0 + timedelta(seconds=seconds), "GET /v3/users", "10.0.0.1", "curl/8")
    recorder.record(principal, t0 + timedelta(seconds=60), "GET /v3/users", "10.0.0.1", "curl/8")
    await recorder.flush()

    used = await stream_events(world, f"token-usage-{principal.token_id}")
    assert [e.used_at for e in used] == [t0, t0 + timedelta(seconds=60)]  # type: ignore[attr-defined]
    assert recorder.metrics.recorded == 2 and recorder.metrics.throttled == 3
    first = used[0]
    assert isinstance(first, TokenUsed)
    assert (first.operation, first.client_address, first.user_agent) == (
        "GET /v3/users",
        "10.0.0.1",
        "curl/8",
    )
    assert first.account_id == principal.account_id


async def test_one_flush_is_one_append_with_deterministic_ids_and_metadata(world: World) -> None:
    verifier = await world.verifier()
    principals = [await principal_for(world, verifier) for _ in range(5)]
    store = CountingStore(world.store)
    recorder = UsageRecorder(dispatcher_over(store))
    now = utc_now()
    for principal in principals:
        recorder.record(principal, now, "introspect")
    assert store.calls == 0  # record() never writes
    assert await recorder.flush()
    assert store.calls == 1

    for principal in principals:
        [stored] = await world.store.read_stream(f"token-usage-{principal.token_id}")
        assert stored.event_id == used_event_id(principal.token_id, now)
        assert stored.metadata.actor == principal.account_id
        assert stored.metadata.actor_token_id == principal.token_id
        assert stored.metadata.occurred_at == now


async def test_a_flush_whose_answer_was_lost_is_retried_without_duplicates(world: World) -> None:
    verifier = await world.verifier()
    principals = [await principal_for(world, verifier) for _ in range(3)]
    store = CountingStore(world.store)
    recorder = UsageRecorder(dispatcher_over(store))
    now = utc_now()
    for principal in principals[:2]:
        recorder.record(principal, now, "introspect")
    store.lose_answers = 1
    assert not await recorder.flush()  # committed, but we could not know
    recorder.record(principals[2], now, "introspect")  # arrives between the attempts
    assert await recorder.flush()  # the same batch again: recognised as a retry
    assert await recorder.flush()  # then the new one
    for principal in principals:
        assert len(await world.store.read_stream(f"token-usage-{principal.token_id}")) == 1
    assert recorder.metrics.flush_errors == 1


async def test_a_batch_mixing_stored_and_new_events_is_recorded_stream_by_stream(world: World) -> None:
    verifier = await world.verifier()
    a, b = [await principal_for(world, verifier) for _ in range(2)]
    now = utc_now()
    first = UsageRecorder(dispatcher_over(world.store))
    first.record(a, now, "introspect")
    await first.flush()
    # Another recorder (another node, same instant) has a's event plus a new one for b.
    second = UsageRecorder(dispatcher_over(world.store))
    second.record(a, now, "introspect")
    second.record(b, now, "introspect")
    assert await second.flush()
    assert len(await world.store.read_stream(f"token-usage-{a.token_id}")) == 1
    assert len(await world.store.read_stream(f"token-usage-{b.token_id}")) == 1


async def test_the_background_task_flushes_periodically_and_stop_flushes_the_rest(world: World) -> None:
    verifier = await world.verifier()
    a, b = [await principal_for(world, verifier) for _ in range(2)]
    recorder = UsageRecorder(dispatcher_over(world.store), flush_interval=0.05)
    await recorder.start()
    recorder.record(a, utc_now(), "introspect")
    for _ in range(100):
        if await world.store.stream_version(f"token-usage-{a.token_id}"):
            break
        await asyncio.sleep(0.01)
    assert await world.store.stream_version(f"token-usage-{a.token_id}") == 1

    slow = UsageRecorder(dispatcher_over(world.store), flush_interval=3600)
    await slow.start()
    slow.record(b, utc_now(), "introspect")
    await slow.stop()
    await recorder.stop()
    assert await world.store.stream_version(f"token-usage-{b.token_id}") == 1


async def test_the_queue_is_bounded(world: World) -> None:
    verifier = await world.verifier()
    principals = [await principal_for(world, verifier) for _ in range(4)]
    recorder = UsageRecorder(dispatcher_over(world.store), max_pending=2)
    for principal in principals:
        recorder.record(principal, utc_now(), "introspect")
    assert recorder.metrics.recorded == 2 and recorder.metrics.dropped == 2


async def test_long_client_strings_are_truncated(world: World) -> None:
    verifier = await world.verifier()
    principal = await principal_for(world, verifier)
    recorder = UsageRecorder(dispatcher_over(world.store))
    recorder.record(principal, utc_now(), "introspect", "1" * 1000, "A" * 100_000)
    await recorder.flush()
    [used] = await stream_events(world, f"token-usage-{principal.token_id}")
    assert isinstance(used, TokenUsed)
    assert len(used.user_agent or "") == 256 and len(used.client_address or "") == 64


# -- sliding expiry ----------------------------------------------------------------------------------


async def test_a_use_extends_a_sliding_token_and_the_cache_sees_it_at_once(world: World) -> None:
    verifier = await world.verifier()
    now = utc_now()
    original = now + timedelta(minutes=10)
    cap = now + timedelta(days=1)
    principal, secret = await issued(
        world, verifier, expires_at=original, auto_extend_seconds=3600, max_expires_at=cap
    )
    recorder = UsageRecorder(dispatcher_over(world.store), expiry=verifier, flush_interval=3600)

    recorder.record(principal, now, "introspect")
    extended = (now + timedelta(seconds=3600)).replace(microsecond=0)  # extensions are whole seconds
    # Before anything is written: this node already uses the new expiry.
    after_original = await verifier.verify(secret, original + timedelta(seconds=1))
    assert isinstance(after_original, Principal) and after_original.expires_at == extended

    assert await recorder.flush()
    [event] = [
        e for e in await world.store.read_stream(f"token-{principal.token_id}") if e.type == "token.extended"
    ]
    assert event.event == TokenExtended(
        token_id=principal.token_id, account_id=principal.account_id, expires_at=extended
    )
    assert event.event_id == extended_event_id(principal.token_id, extended)
    assert event.metadata.actor == principal.account_id
    assert event.metadata.actor_token_id == principal.token_id

    # Once the read model has it, a fresh verifier (another node) agrees.
    await world.settle()
    other = await world.verifier()
    elsewhere = await other.verify(secret, original + timedelta(seconds=1))
    assert isinstance(elsewhere, Principal) and elsewhere.expires_at == extended


async def test_small_gains_do_not_extend_and_the_cap_holds(world: World) -> None:
    verifier = await world.verifier()
    now = utc_now()
    cap = now + timedelta(hours=2)
    principal, secret = await issued(
        world, verifier, expires_at=now + timedelta(hours=1), auto_extend_seconds=3600, max_expires_at=cap
    )
    recorder = UsageRecorder(dispatcher_over(world.store), expiry=verifier)
    recorder.record(principal, now + timedelta(seconds=30), "introspect")  # gains 30 s < 36 s
    assert recorder.metrics.extensions == 0
    recorder.record(principal, now + timedelta(seconds=40), "introspect")  # gains 40 s > 36 s
    assert recorder.metrics.extensions == 1
    # An hour later, within the extended expiry: now the cap (max_expires_at) is the limit.
    later = now + timedelta(minutes=60, seconds=30)
    again = await verifier.verify(secret, later)
    assert isinstance(again, Principal)
    assert again.expires_at == (now + timedelta(minutes=60, seconds=40)).replace(microsecond=0)
    recorder.record(again, later, "introspect")
    assert recorder.metrics.extensions == 2
    await recorder.flush()
    stored = await world.store.read_stream(f"token-{principal.token_id}")
    # One flush: only the latest extension of each token is written.
    assert [e.event.expires_at for e in stored if isinstance(e.event, TokenExtended)] == [cap]
    final = await verifier.verify(secret, now + timedelta(minutes=119))
    assert isinstance(final, Principal) and final.expires_at == cap
    assert await verifier.verify(secret, cap) is Rejection.EXPIRED


async def test_the_minute_threshold_applies_to_long_windows(world: World) -> None:
    verifier = await world.verifier()
    now = utc_now()
    day = 86_400
    principal = await principal_for(
        world, verifier, expires_at=now + timedelta(seconds=day), auto_extend_seconds=day
    )
    recorder = UsageRecorder(dispatcher_over(world.store), expiry=verifier)
    recorder.record(principal, now + timedelta(seconds=59), "introspect")  # 1% would be 864 s; 60 s rules
    assert recorder.metrics.extensions == 0
    recorder.record(principal, now + timedelta(seconds=61), "introspect")
    assert recorder.metrics.extensions == 1


async def test_another_nodes_extension_reaches_the_cache_from_the_log(world: World) -> None:
    node_a = await world.verifier()
    node_b = await world.verifier()
    now = utc_now()
    original = now + timedelta(minutes=10)
    principal, secret = await issued(world, node_a, expires_at=original, auto_extend_seconds=3600)
    assert isinstance(await node_b.verify(secret, now), Principal)  # cached on b

    recorder_a = UsageRecorder(dispatcher_over(world.store), expiry=node_a)
    recorder_a.record(principal, now, "introspect")
    await recorder_a.flush()
    extended = (now + timedelta(hours=1)).replace(microsecond=0)
    # b learns it from its tail, before the read model is updated.
    for _ in range(200):
        verdict = await node_b.verify(secret, original + timedelta(seconds=1))
        if isinstance(verdict, Principal):
            break
        await asyncio.sleep(0.005)
    assert isinstance(verdict, Principal) and verdict.expires_at == extended


# -- introspection over HTTP -------------------------------------------------------------------------


@pytest.fixture
async def http(world: World) -> AsyncIterator[tuple[TestClient, World, TokenVerifier, UsageRecorder]]:  # type: ignore[type-arg]
    verifier = await world.verifier()
    recorder = UsageRecorder(dispatcher_over(world.store), expiry=verifier, flush_interval=3600)
    app = web.Application(middlewares=[problem_middleware])
    app[VERIFIER], app[USAGE], app[CLOCK] = Late(verifier), Late(recorder), Late(utc_now)
    add_routes(app)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, world, verifier, recorder
    finally:
        await client.close()


async def test_introspection_of_an_active_token(http) -> None:  # type: ignore[no-untyped-def]
    client, world, verifier, recorder = http
    account = await world.account("svc")
    await world.grant(account, "Admin")
    expires = (utc_now() + timedelta(days=1)).replace(microsecond=0)
    token = await world.issue(account, name="deploy", expires_at=expires, scopes=["identity:read"])
    await world.settle(verifier)

    response = await client.post("/v3/tokens/introspect", json={"token": token.secret})
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert body.pop("iat") <= int(utc_now().timestamp())
    assert body == {
        "active": True,
        "token_id": token.token_id,
        "account_id": account,
        "account_name": "svc",
        "name": "deploy",
        "exp": int(expires.timestamp()),
        "scopes": ["identity:read"],
        "roles": [
            {
                "role_name": "Admin",
                "entity_id": "9a0f4c61-6f35-4d7e-9d3a-3f1f2b2c0001",
                "entity_type_name": "Identity",
                "entity_region": "*",
                "source": "direct",
            }
        ],
    }
    form = await client.post(
        "/v3/tokens/introspect",
        data=f"token={token.secret}&token_type_hint=access_token",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status == 200 and (await form.json())["active"] is True

    assert recorder.metrics.recorded == 1 and recorder.metrics.throttled == 1
    await recorder.flush()
    [used] = await world.store.read_stream(f"token-usage-{token.token_id}")
    assert isinstance(used.event, TokenUsed) and used.event.operation == "introspect"


async def test_every_inactive_token_gets_the_same_answer(http) -> None:  # type: ignore[no-untyped-def]
    client, world, verifier, recorder = http
    account = await world.account()
    revoked = await world.issue(account)
    expired = await world.issue(account, expires_at=utc_now() - timedelta(seconds=1))
    await world.append(
        f"token-{revoked.token_id}",
        TokenRevoked(token_id=revoked.token_id, account_id=account, reason="x"),
    )
    await world.settle(verifier)
    answers = set()
    for presented in (revoked.secret, expired.secret, generate_secret(), "spat_nope", "", "x" * 3000):
        for request in (
            client.post("/v3/tokens/introspect", json={"token": presented}),
            client.post(
                "/v3/tokens/introspect",
                data=aiohttp.FormData({"token": presented}),
            ),
        ):
            response = await request
            assert response.status == 200
            answers.add(await response.read())
    assert answers == {b'{"active":false}'}
    assert recorder.metrics.recorded == 0


async def test_a_request_without_a_token_is_a_bad_request(http) -> None:  # type: ignore[no-untyped-def]
    client, *_ = http
    for kwargs in (
        {"json": {}},
        {"json": {"token": 5}},
        {"json": {"token": "a", "other": 1}},
        {"data": "nothing=here", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        {"data": "token=a&token=b", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        {"data": "token=a&other=1", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        {
            "data": "token=a&token_type_hint=x&token_type_hint=y",
            "headers": {"Content-Type": "application/x-www-form-urlencoded"},
        },
    ):
        response = await client.post("/v3/tokens/introspect", **kwargs)
        assert response.status == 400, kwargs
    response = await client.post(
        "/v3/tokens/introspect", data=b"token", headers={"Content-Type": "text/plain"}
    )
    assert response.status == 415
    response = await client.post("/v3/tokens/introspect", json={"token": "x" * 10_000})
    assert response.status == 413


async def test_introspection_answers_503_before_the_runtime_is_up() -> None:
    app = web.Application(middlewares=[problem_middleware])
    add_routes(app)
    async with TestClient(TestServer(app)) as client:
        response = await client.post("/v3/tokens/introspect", json={"token": "x"})
        assert response.status == 503
