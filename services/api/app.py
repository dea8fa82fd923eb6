"""The aiohttp application factory: middlewares in their order, and every route.

Middleware order (outermost first):

0. ``http_metrics_middleware``: counts and times every answer (``services.api.metrics``);
1. ``problem_middleware``: request id, every error as ``application/problem+json``;
2. ``domain_error_middleware``: the command side's errors (not found, conflict...) as problems;
3. ``authentication_middleware``: the bearer token of every ``/v3`` request, through the verifier;

``Idempotency-Key`` is no middleware: a command route hands the header to the dispatcher
(``services.api.context.execute``), which authorises, then claims the key per credential and
command (``services.dispatch``). Introspection, a read sent as POST, never reads it: a key on it (or
on any GET) changes nothing.
"""

from datetime import timedelta

from aiohttp import web

from services.api import docs, health, introspection, metrics, openapi, state
from services.api.authentication import authentication_middleware
from services.api.context import authorize
from services.api.domain_errors import domain_error_middleware
from services.api.problems import Handler, problem_middleware
from services.api.routes import accounts, audit, federation, oauth, revocation, roles, teams, tokens, usage
from services.authorization import Right
from services.oidc import verification

MAX_BODY_BYTES = 64 * 1024


@web.middleware
async def _introspection_right(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Introspecting others' tokens needs the Introspector right (or a role that includes it)."""
    if request.path == introspection.PATH:
        authorize(request, Right.INTROSPECT)
    return await handler(request)


def create_app(
    *,
    metrics_public: bool = False,
    revocation_secret: str | None = None,
    max_id_token_age: timedelta = verification.DEFAULT_MAX_AGE,
) -> web.Application:
    """The application, its services not bound yet (``services.api.state.bind``): until they are,
    every route but the probes, ``/metrics`` and the documents answers 503."""
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        middlewares=[
            metrics.http_metrics_middleware,
            problem_middleware,
            domain_error_middleware,
            authentication_middleware,
            _introspection_right,
        ],
    )
    state.install(app)
    app[state.METRICS_PUBLIC] = metrics_public
    app[state.MAX_ID_TOKEN_AGE] = max_id_token_age
    if revocation_secret is not None:
        app[state.REVOCATION_SECRET] = revocation_secret
    health.add_routes(app)
    accounts.add_routes(app)
    tokens.add_routes(app)
    roles.add_routes(app)
    federation.add_routes(app)
    oauth.add_routes(app)
    revocation.add_routes(app)
    teams.add_routes(app)
    usage.add_routes(app)
    audit.add_routes(app)
    introspection.add_routes(app)
    openapi.add_routes(app)
    metrics.add_routes(app)
    docs.add_routes(app)
    return app
