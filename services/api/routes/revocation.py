"""The leaked-token revocation endpoints, compatible with GitLab's token revocation API, for secret
scanners: ``GET /v1/revocable_token_types`` and ``POST /v1/revoke_tokens`` with
``[{"type", "token", "location"}]``.

Authenticated by the deployment's shared secret (``TOKENLEDGER_REVOCATION_SECRET``, in the
``Authorization`` header, bare as GitLab sends it or after ``Bearer``, compared in constant time);
without the setting both answer 404. Rate-limited per process (``services.api.rate_limit``: ``RATE``
a second, ``BURST`` at once; 429 beyond), the secret's holder apart from requests with a wrong or
no secret, so a flood of those cannot keep the scanner out. Each well-formed secret that names a
token is revoked, reason ``leaked``, with the location recorded (``RevokeLeakedToken``,
tokenledger's own command); unknown, malformed, already revoked or foreign entries are accepted
silently, and the answer is 204 whatever they were, so the endpoint tells nobody whether a string
is a live token. Idempotent: a revoked token stays revoked.
"""

import hmac

import msgspec
from aiohttp import web

from services.api.context import service, settle
from services.api.parsing import decode_body, raw_body
from services.api.problems import NotFound, ProblemError, Unauthenticated
from services.api.rate_limit import RateLimit
from services.api.state import CLOCK, DISPATCHER, REVOCATION_SECRET, VERIFIER
from services.authorization import SYSTEM
from services.client_text import log_field
from services.commands import CommandContext
from services.tokens.commands import RevokeLeakedToken
from services.tokens.secrets import is_well_formed

TOKEN_TYPE = "tokenledger_access_token"  # noqa: S105 (a type name)
RATE, BURST = 5.0, 20.0
MAX_ENTRIES = 100
MAX_LOCATION = 1024


class LeakReport(msgspec.Struct, kw_only=True):
    type: str
    token: str
    location: str = ""


LIMIT = web.AppKey("tokenledger.revocation_limit", RateLimit)
"""Two buckets: ``secret`` for the secret's holder, ``refused`` for every other request."""


def _admit(request: web.Request) -> None:
    secret = request.app.get(REVOCATION_SECRET)
    if not secret:
        raise NotFound("Not found")
    presented = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    authentic = hmac.compare_digest(presented.encode(), secret.encode())
    if not request.app[LIMIT].take("secret" if authentic else "refused"):
        raise ProblemError(
            429,
            "Too Many Requests",
            "too many revocation requests; retry shortly",
            headers={"Retry-After": "1"},
        )
    if not authentic:
        raise Unauthenticated("a valid revocation secret is required")


async def token_types(request: web.Request) -> web.Response:
    _admit(request)
    return web.json_response({"types": [TOKEN_TYPE]})


async def revoke_tokens(request: web.Request) -> web.Response:
    _admit(request)
    reports = decode_body(await raw_body(request), list[LeakReport])[:MAX_ENTRIES]
    verifier, dispatcher, now = (
        service(request, VERIFIER),
        service(request, DISPATCHER),
        service(request, CLOCK)(),
    )
    for report in reports:
        if report.type != TOKEN_TYPE or not is_well_formed(report.token):
            continue
        found = await verifier.check(report.token, now)
        if found.token_id is None:
            continue
        location = log_field(report.location, MAX_LOCATION)
        ctx = CommandContext(now=now, actor="revocation", idempotency_key=None)
        outcome = await dispatcher.dispatch(
            RevokeLeakedToken(token_id=found.token_id, location=location), SYSTEM, ctx
        )
        await settle(request, outcome.cursor)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app[LIMIT] = RateLimit(RATE, BURST)
    app.router.add_get("/v1/revocable_token_types", token_types)
    app.router.add_post("/v1/revoke_tokens", revoke_tokens)
