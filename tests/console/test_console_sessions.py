"""Console sessions against the real PostgreSQL (idle and absolute expiry, ending, malformed ids),
the session cookie's attributes over TLS, the CSRF token, and the usage chart's geometry."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from services.composition import Runtime
from services.config import ConfigError, load_settings
from services.console.chart import usage_chart
from services.console.guard import SESSION_COOKIE, set_cookie
from services.console.sessions import SessionPolicy, SessionStore, csrf_matches, csrf_token

POLICY = SessionPolicy(idle=timedelta(minutes=30), lifetime=timedelta(hours=12))
T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


async def _open(store: SessionStore, at: datetime) -> str:
    return await store.open(str(uuid.uuid4()), str(uuid.uuid4()), "a-secret-hash", at)


async def test_a_session_lives_while_used_and_ends_when_idle(api_runtime: Runtime) -> None:
    store = SessionStore(api_runtime.pool, POLICY)
    session_id = await _open(store, T0)
    found = await store.find(session_id, T0 + timedelta(minutes=29))
    assert found is not None and found.expires_at == T0 + POLICY.lifetime
    # idle time counts from the last use
    assert await store.find(session_id, T0 + timedelta(minutes=58)) is not None
    assert await store.find(session_id, T0 + timedelta(minutes=90)) is None
    assert await store.find(session_id, T0 + timedelta(minutes=91)) is None  # gone for good


async def test_a_session_ends_at_its_lifetime_however_much_it_is_used(api_runtime: Runtime) -> None:
    store = SessionStore(api_runtime.pool, POLICY)
    session_id = await _open(store, T0)
    at = T0
    while at + timedelta(minutes=20) < T0 + POLICY.lifetime:
        at += timedelta(minutes=20)
        assert await store.find(session_id, at) is not None
    assert await store.find(session_id, T0 + POLICY.lifetime) is None


async def test_ended_unknown_and_malformed_sessions_are_none(api_runtime: Runtime) -> None:
    store = SessionStore(api_runtime.pool, POLICY)
    session_id = await _open(store, T0)
    await store.end(session_id)
    assert await store.find(session_id, T0) is None
    for presented in ("", "x" * 43, "a" * 42, "' OR 1=1 --" + "a" * 32, "\x00" * 43):
        assert await store.find(presented, T0) is None
    sql = "SELECT count(*) FROM console_sessions WHERE secret_hash = $1 OR id_hash::text LIKE $2"
    assert await api_runtime.pool.fetchval(sql, session_id, f"%{session_id}%") == 0


def test_the_cookie_is_secure_over_tls_and_never_readable_by_scripts() -> None:
    for scheme, secure in (("http", False), ("https", True)):
        request = make_mocked_request("GET", "/console/sign-in").clone(scheme=scheme)
        response = web.Response()
        set_cookie(request, response, SESSION_COOKIE, "value")
        morsel = response.cookies[SESSION_COOKIE]
        assert bool(morsel["secure"]) is secure
        assert morsel["httponly"] is True
        assert morsel["samesite"] == "Strict"
        assert morsel["path"] == "/console"


def test_the_csrf_token_belongs_to_its_session() -> None:
    token = csrf_token("session-a")
    assert csrf_matches("session-a", token)
    assert not csrf_matches("session-b", token)
    assert not csrf_matches("session-a", "")
    assert not csrf_matches("session-a", token[:-1])


def test_the_chart_has_one_bar_an_hour_and_stacks_the_outcomes() -> None:
    now = datetime(2030, 1, 8, 12, 30, tzinfo=UTC)
    hour = datetime(2030, 1, 8, 10, tzinfo=UTC)
    too_old = now - timedelta(days=9)
    chart = usage_chart([(hour, "accepted", 3), (hour, "rejected", 1), (too_old, "accepted", 5)], now, 7)
    assert len(chart.bars) == 7 * 24
    assert chart.bars[-1].hour == datetime(2030, 1, 8, 12, tzinfo=UTC)
    (busy,) = [bar for bar in chart.bars if bar.accepted or bar.rejected]
    assert (busy.hour, busy.accepted, busy.rejected) == (hour, 3, 1)
    assert chart.peak == 4 and chart.accepted == 3 and chart.rejected == 1
    assert busy.rejected_y + busy.rejected_height == busy.accepted_y
    assert busy.rejected_y == chart.top
    assert busy.accepted_y + busy.accepted_height == chart.baseline
    assert len(chart.days) == 7


def test_the_session_times_come_from_the_environment() -> None:
    settings = load_settings(
        {"TOKENLEDGER_CONSOLE_IDLE_MINUTES": "5", "TOKENLEDGER_CONSOLE_SESSION_HOURS": "2"}
    )
    assert (settings.console_idle, settings.console_lifetime) == (timedelta(minutes=5), timedelta(hours=2))
    defaults = load_settings({})
    assert (defaults.console_idle, defaults.console_lifetime) == (POLICY.idle, POLICY.lifetime)
    with pytest.raises(ConfigError, match="TOKENLEDGER_CONSOLE_IDLE_MINUTES"):
        load_settings({"TOKENLEDGER_CONSOLE_IDLE_MINUTES": "0"})
