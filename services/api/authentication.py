"""Authentication of /v3 requests: ``Authorization: Bearer spat_...`` through the same verifier that
serves introspection. Every rejection is the same 401: the caller never learns whether a token was
unknown, revoked, expired, rotated out or belongs to a disabled account.

Every verification is recorded in the usage log (``UsageRecorder.record_verification``, no I/O on
this path): a rejection before the 401 is raised; a genuine token once the handler is done, as
rejected when it was refused a right the request needs (``REFUSAL``: ``out_of_scope`` when its
scopes exclude a right its account holds, ``no_right`` when the account does not hold it), else
``accepted``. A
request without a bearer token verifies nothing and is not recorded. What the request chose (the
path of a request no route matches, the address, the ``User-Agent``) is recorded as the usage log
makes it recordable (``services.client_text``): whatever it contains, the next verification is
recorded too.

``GET /metrics`` is authenticated the same way unless ``TOKENLEDGER_METRICS=public``.

A request with more than one ``Authorization`` header is refused (400): which one a proxy, a cache
or this service reads would otherwise be anyone's guess.

Every answer to an authenticated request carries ``Cache-Control: no-store`` and
``Pragma: no-cache``: it holds identity data, and sometimes a secret (a token issued or rotated, a
replay of that answer); no browser or intermediary may keep it.
"""

from aiohttp import web

from services.api.context import PRINCIPAL, REFUSAL, service
from services.api.metrics import PATH as METRICS_PATH
from services.api.problems import BadRequest, Handler, InvalidParameter, Unauthenticated
from services.api.state import CLOCK, METRICS_PUBLIC, USAGE, VERIFIER
from services.auth.principal import Principal

PUBLIC_PATHS = frozenset({"/v3/openapi.json", "/v3/oauth/token"})
NOT_STORED = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _bearer(request: web.Request) -> str:
    headers = request.headers.getall("Authorization", [])
    if len(headers) > 1:
        raise BadRequest(
            [
                InvalidParameter(
                    field="Authorization", reason="must be sent once", rule="invalid", source="header"
                )
            ]
        )
    scheme, _, credentials = (headers[0] if headers else "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise Unauthenticated()
    return credentials.strip()


def _operation(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return f"{request.method} {resource.canonical if resource else request.path}"


async def _authenticated(request: web.Request, handler: Handler) -> web.StreamResponse:
    verifier, usage = service(request, VERIFIER), service(request, USAGE)
    presented = _bearer(request)
    now = service(request, CLOCK)()
    verification = await verifier.check(presented, now)
    client_address, user_agent = request.remote, request.headers.get("User-Agent")
    if not isinstance(verification.verdict, Principal):
        usage.record_verification(
            verification,
            now,
            _operation(request),
            presented=presented,
            client_address=client_address,
            user_agent=user_agent,
        )
        raise Unauthenticated()
    request[PRINCIPAL] = verification.verdict
    try:
        response = await handler(request)
        response.headers.update(NOT_STORED)
        return response
    finally:
        usage.record_verification(
            verification,
            now,
            _operation(request),
            client_address=client_address,
            user_agent=user_agent,
            refusal=request.get(REFUSAL),
        )


def _needs_token(request: web.Request) -> bool:
    if request.path == METRICS_PATH:
        return not request.app.get(METRICS_PUBLIC, False)
    return request.path.startswith("/v3/") and request.path not in PUBLIC_PATHS


@web.middleware
async def authentication_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if _needs_token(request):
        return await _authenticated(request, handler)
    return await handler(request)
