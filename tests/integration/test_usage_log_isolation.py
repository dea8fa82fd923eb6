"""One bad row never blocks the rows behind it (real PostgreSQL): a usage-log row the database refuses
for its content is set aside (counted, logged once, kept for inspection) and every other row is
stored, in order; a usage event the event store refuses is dropped alone and every other use and
extension is recorded. Client text never makes such a row or event: it is stored escaped."""

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from events.tokens import TokenUsed
from services.auth.principal import Principal, Rejection, Verification
from services.auth.usage import UsageRecorder
from services.auth.usage_log import UsageLog
from tests.integration.test_verifier_support import PEPPER, World, dispatcher_over, open_world, utc_now


@pytest.fixture
async def world(empty_database: str) -> AsyncIterator[World]:
    async with open_world(empty_database) as world:
        yield world


REFUSED = Verification(Rejection.REVOKED, token_id="not-a-uuid", account_id="not-a-uuid-either")
"""A verification whose row the database refuses for its content (ids that are not UUIDs)."""


def exposed_rows() -> tuple[float, float]:
    """The usage-log rows set aside and stored, as ``/metrics`` shows them."""
    names = ("tokenledger_usage_log_set_aside_rows_total", "tokenledger_usage_log_stored_rows_total")
    set_aside, stored = (REGISTRY.get_sample_value(name) or 0.0 for name in names)
    return set_aside, stored


async def stored_operations(world: World, prefix: str = "") -> list[str]:
    rows = await world.pool.fetch(
        "SELECT operation FROM usage_log WHERE starts_with(operation, $1) ORDER BY position", prefix
    )
    return [row["operation"] for row in rows]


async def test_a_refused_row_is_set_aside_and_the_rows_around_it_are_stored(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    log = UsageLog(world.pool, PEPPER)
    now = utc_now()
    counted = exposed_rows()
    for n in range(5):
        log.append(REFUSED if n == 2 else Verification(Rejection.UNKNOWN), now, f"op-{n}", presented="x")
    with caplog.at_level(logging.WARNING, logger="services.auth.usage_log"):
        assert await log.flush()
    assert await stored_operations(world) == ["op-0", "op-1", "op-3", "op-4"]
    assert (log.metrics.set_aside, log.metrics.flushed_rows, log.pending) == (1, 4, 0)
    exposed = exposed_rows()
    assert (exposed[0] - counted[0], exposed[1] - counted[1]) == (1, 4)
    [(_, _, _, token_id, *_rest)] = log.set_aside
    assert token_id == "not-a-uuid"
    assert sum("set aside" in record.getMessage() for record in caplog.records) == 1

    log.append(Verification(Rejection.UNKNOWN), now, "op-5", presented="x")
    assert await log.flush()
    assert (await stored_operations(world))[-1] == "op-5"
    assert log.metrics.set_aside == 1  # logged and counted once, never retried


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    refused=st.lists(st.booleans(), min_size=1, max_size=40), max_batch=st.integers(min_value=1, max_value=16)
)
async def test_whatever_rows_are_refused_every_other_row_is_stored_in_order(
    world: World, refused: list[bool], max_batch: int
) -> None:
    prefix = f"{uuid.uuid4().hex}-"  # the table is append-only: each example reads its own rows
    log = UsageLog(world.pool, PEPPER, max_batch=max_batch)
    now = utc_now()
    for n, bad in enumerate(refused):
        log.append(REFUSED if bad else Verification(Rejection.UNKNOWN), now, f"{prefix}{n}", presented="x")
    assert await log.flush()
    assert await stored_operations(world, prefix) == [
        f"{prefix}{n}" for n, bad in enumerate(refused) if not bad
    ]
    assert (log.metrics.set_aside, log.pending) == (sum(refused), 0)


async def test_hostile_client_text_is_stored_escaped_never_refused(world: World) -> None:
    log = UsageLog(world.pool, PEPPER)
    log.append(
        Verification(Rejection.MALFORMED),
        utc_now(),
        "GET /v3/nope\x00\n\x1b[2J",
        presented="x",
        client_address="10.0.0.1\x00",
        user_agent="curl/\udcff\u202e",
    )
    assert await log.flush()
    [row] = await world.pool.fetch("SELECT operation, client_address, user_agent FROM usage_log")
    assert tuple(row) == ("GET /v3/nope\\x00\\x0a\\x1b[2J", "10.0.0.1\\x00", "curl/\\udcff\\u202e")
    assert log.metrics.set_aside == 0


async def test_a_refused_usage_event_is_dropped_alone(world: World) -> None:
    verifier = await world.verifier()
    now = utc_now()
    account = await world.account()
    sliding = await world.issue(
        account,
        expires_at=now + timedelta(minutes=10),
        auto_extend_seconds=3600,
        max_expires_at=now + timedelta(days=1),
    )
    plain = await world.issue(account)
    await world.settle(verifier)
    principals = [await verifier.verify(token.secret, now) for token in (sliding, plain)]
    assert all(isinstance(principal, Principal) for principal in principals), principals
    genuine = [principal for principal in principals if isinstance(principal, Principal)]
    refused = msgspec.structs.replace(genuine[1], token_id="bad\x00id")  # its stream id cannot be stored
    recorder = UsageRecorder(dispatcher_over(world.store), expiry=verifier, flush_interval=3600)
    for principal in (refused, *genuine):
        recorder.record(principal, now, "GET /v3/x\x00", "10.0.0.1", "curl/\udcff")
    assert await recorder.flush()
    assert recorder.metrics.refused == 1
    for token in (sliding, plain):
        [used] = [e.event for e in await world.store.read_stream(f"token-usage-{token.token_id}")]
        assert isinstance(used, TokenUsed) and (used.operation, used.user_agent) == (
            "GET /v3/x\\x00",
            "curl/\\udcff",
        )
    extended = [e.event.tag() for e in await world.store.read_stream(f"token-{sliding.token_id}")]
    assert extended[-1] == "token.extended"
    assert await recorder.flush()  # nothing left behind
