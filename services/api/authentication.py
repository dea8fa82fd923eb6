"""Authentication of /v3 requests: ``Authorization: Bearer spat_...`` through the same verifier that
serves introspection. Every rejection is the same 401: the caller never learns whether a token was
unknown, revoked, expired, rotated out or belongs to a disabled account.
"""

from aiohttp import web

from services.api.context import PRINCIPAL, runtime
from services.api.problems import Handler, Unauthenticated
from services.auth.principal import Principal

PUBLIC_PATHS = frozenset({"/v3/openapi.json"})


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise Unauthenticated()
    return credentials.strip()


async def authenticate(request: web.Request) -> Principal:
    current = runtime(request)
    now = current.clock()
    verdict = await current.verifier.verify(_bearer(request), now)
    if not isinstance(verdict, Principal):
        raise Unauthenticated()
    resource = request.match_info.route.resource
    operation = f"{request.method} {resource.canonical if resource else request.path}"
    current.usage.record(verdict, now, operation, request.remote, request.headers.get("User-Agent"))
    return verdict


@web.middleware
async def authentication_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/v3/") and request.path not in PUBLIC_PATHS:
        request[PRINCIPAL] = await authenticate(request)
    return await handler(request)
