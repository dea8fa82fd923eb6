"""The application's services are typed, late-bound cells (``services.api.state``): the server
answers liveness at once, 503 on every route until its services are bound and again once they are
unbound, and a route serves as soon as the services it uses are bound, whatever else is not."""

from datetime import UTC, datetime
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from services.api import state
from services.api.app import create_app


class _Pool:
    async def fetchval(self, query: str, **_: Any) -> int:
        return 1


class _Runtime:
    """Only what readiness uses is real; ``bind`` takes every service of a runtime."""

    pool: Any = _Pool()
    deps: Any = type("Deps", (), {"catalogue": object()})()
    dispatcher: Any = object()
    organization: Any = object()
    projections: Any = object()
    verifier: Any = object()
    usage: Any = object()
    gauges: Any = object()
    oidc_keys: Any = object()

    @staticmethod
    def clock() -> datetime:
        return datetime.now(UTC)


async def test_routes_answer_503_until_their_services_are_bound_and_after_they_are_unbound() -> None:
    app = create_app()
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/healthz")).status == 200
        assert (await client.get("/readyz")).status == 503
        assert (await client.get("/v3/system-accounts")).status == 503
        state.bind(app, _Runtime())
        assert app[state.DISPATCHER].value is _Runtime.dispatcher
        assert app[state.CATALOGUE].value is _Runtime.deps.catalogue
        assert (await client.get("/readyz")).status == 200
        state.unbind(app)
        assert (await client.get("/readyz")).status == 503
        assert (await client.get("/v3/system-accounts")).status == 503


async def test_a_route_serves_with_only_the_services_it_uses() -> None:
    """Readiness uses the read pool alone: bound, it answers, with nothing else bound."""
    app = create_app()
    app[state.READ_POOL].value = _Pool()  # type: ignore[assignment]
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/readyz")).status == 200
        assert (await client.get("/v3/system-accounts")).status == 503
