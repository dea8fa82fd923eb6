"""``Idempotency-Key`` on command requests, at the HTTP door: the header, and the middleware that
claims the key in ``services.idempotency.IdempotencyStore`` around the route.

This module owns:

* ``idempotency_key(request)``: the validated header (``services.idempotency.key_problem``) or None;
* ``idempotency_middleware(store_of, credential_of, is_command)`` and ``command_scope(request)``.

What it does not do is answer for the handler. No response is stored and nothing is replayed from
here: every retry runs the route, so authorisation (the route's and the domain's) runs first, each
time, with the caller's rights of now. The answer to a retry comes from the log: under a key, the
handlers derive their ids and secrets from ``command_scope`` (credential, method, route, key and
request fingerprint), find their own events in the stream, and answer with the outcome folded up to
them, or refuse when it no longer holds (``services.commands.recorded``). A client thus gets the
original answer or a clear refusal, never a second decision, whether the first attempt's answer was
lost, its process died, or its key expired.

The flow for a command carrying the header, once the credential is known: the request claims the
key (see ``services.idempotency.store``) and runs; another request under the same key (and scope)
is a 422, a retry while a run is pending a 409. Another credential never sees the row: its scope
differs, so for it the key names another request altogether.

Reads are not commands: ``is_command`` leaves them (GET, and POST reads such as introspection) alone,
so a key on them changes nothing and no answer about a token's state is ever kept.

The seams: ``credential_of(request)`` returns the authenticated token's id (the auth middleware,
placed before this one, sets it); None means no credential, and the request runs without idempotency
(routes needing auth reject it themselves). ``store_of(request)`` returns the store, or None while
the service is still starting (503).
"""

import logging
from collections.abc import Callable

import asyncpg
from aiohttp import web
from aiohttp.typedefs import Middleware

from services.api.parsing import raw_body
from services.api.problems import (
    BadRequest,
    Conflict,
    Handler,
    InvalidParameter,
    ServiceUnavailable,
    UnprocessableEntity,
)
from services.idempotency import (
    MAX_KEY_LENGTH,
    IdempotencyStore,
    InProgress,
    Mismatch,
    key_problem,
    request_fingerprint,
    scope_digest,
)

_log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
COMMAND_SCOPE = web.RequestKey("tokenledger.command_scope", str)
"""Set by the middleware on a command run under a key: what the handlers derive ids and secrets from."""


def idempotency_key(request: web.Request) -> str | None:
    """The ``Idempotency-Key`` header, or None when absent; 400 when blank, longer than 255
    characters, or holding a character that is not printable (control characters, bytes that are
    not UTF-8)."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    match key_problem(key):
        case None:
            return key
        case "blank":
            problem = InvalidParameter(HEADER, "cannot be blank", "min_length", "header", minimum=1)
        case "too_long":
            reason = f"must not have more than {MAX_KEY_LENGTH} characters"
            problem = InvalidParameter(HEADER, reason, "max_length", "header", maximum=MAX_KEY_LENGTH)
        case _:
            reason = "must hold printable UTF-8 characters only"
            problem = InvalidParameter(HEADER, reason, "invalid", "header")
    raise BadRequest([problem])


def command_scope(request: web.Request) -> str | None:
    """The idempotency scope of this command run (None without a key): a digest of the credential,
    method, route, key and request fingerprint, the same on every retry of the same request."""
    return request.get(COMMAND_SCOPE)


_DATABASE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def _route(request: web.Request) -> str:
    """The matched route's template (never the client's raw path: a constant, safe to store)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else ""


def idempotency_middleware(
    store_of: Callable[[web.Request], IdempotencyStore | None],
    credential_of: Callable[[web.Request], str | None],
    is_command: Callable[[web.Request], bool],
) -> Middleware:
    """Install after ``problem_middleware`` and after authentication."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not is_command(request):
            return await handler(request)
        key = idempotency_key(request)
        credential = credential_of(request) if key is not None else None
        if key is None or credential is None:
            return await handler(request)
        store = store_of(request)
        if store is None:
            raise ServiceUnavailable(retry_after_seconds=1)
        scope = f"{credential} {request.method} {_route(request)}"
        fingerprint = request_fingerprint(request.method, request.path_qs, await raw_body(request))
        outcome = await store.claim(scope, key, fingerprint)
        if isinstance(outcome, Mismatch):
            raise UnprocessableEntity(
                f"The {HEADER} header was already used with a different request",
                [InvalidParameter(HEADER, "was already used with a different request", "invalid", "header")],
            )
        if isinstance(outcome, InProgress):
            raise Conflict(f"a request with this {HEADER} is in progress", headers={"Retry-After": "1"})
        request[COMMAND_SCOPE] = scope_digest((scope, key, fingerprint))
        try:
            return await handler(request)
        finally:
            try:
                if not await store.complete(scope, key, outcome):
                    _log.warning("an idempotency claim was taken over before its run ended")
            except _DATABASE_ERRORS:
                _log.exception(
                    "could not complete an idempotency claim; it frees itself after pending_timeout"
                )

    return middleware
