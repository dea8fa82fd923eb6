"""The aiohttp application factory: middlewares in their order, and every route.

Middleware order (outermost first):

1. ``problem_middleware``: request id, every error as ``application/problem+json``;
2. ``domain_error_middleware``: the command side's errors (not found, conflict...) as problems;
3. ``authentication_middleware``: the bearer token of every ``/v3`` request, through the verifier;
4. ``idempotency_middleware``: ``Idempotency-Key`` on commands, per credential, method and route. It
   replays nothing: every retry runs its route, authorisation first, and the handlers answer it from
   the log (``services.commands.recorded``).

Commands are the POST routes except introspection, which is a read sent as POST: a key on it (or on
any GET) changes nothing.
"""

from aiohttp import web

from services.api import health, introspection, openapi
from services.api.authentication import authentication_middleware
from services.api.context import PRINCIPAL, authorize
from services.api.domain_errors import domain_error_middleware
from services.api.idempotency import idempotency_middleware
from services.api.problems import Handler, problem_middleware
from services.api.routes import accounts, audit, roles, teams, tokens, usage
from services.api.state import RUNTIME, AppState
from services.authorization import Right
from services.idempotency import IdempotencyStore

MAX_BODY_BYTES = 64 * 1024


def _idempotency_store(request: web.Request) -> IdempotencyStore | None:
    runtime = request.app[RUNTIME].runtime
    return runtime.idempotency if runtime is not None else None


def _credential_id(request: web.Request) -> str | None:
    principal = request.get(PRINCIPAL)
    return principal.token_id if principal is not None else None


def _is_command(request: web.Request) -> bool:
    return request.method == "POST" and request.path != introspection.PATH


@web.middleware
async def _introspection_right(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Introspecting others' tokens needs the Introspector right (or a role that includes it)."""
    if request.path == introspection.PATH:
        authorize(request, Right.INTROSPECT)
    return await handler(request)


def create_app(state: AppState) -> web.Application:
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        middlewares=[
            problem_middleware,
            domain_error_middleware,
            authentication_middleware,
            _introspection_right,
            idempotency_middleware(_idempotency_store, _credential_id, _is_command),
        ],
    )
    app[RUNTIME] = state
    health.add_routes(app)
    accounts.add_routes(app)
    tokens.add_routes(app)
    roles.add_routes(app)
    teams.add_routes(app)
    usage.add_routes(app)
    audit.add_routes(app)
    introspection.add_routes(app, lambda: state.runtime)
    openapi.add_routes(app)
    return app
