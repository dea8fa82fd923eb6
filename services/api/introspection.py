"""``POST /v3/tokens/introspect``: token introspection in the manner of RFC 7662.

The token comes as JSON (``{"token": "spat_..."}``) or, as RFC 7662 has it, as an
``application/x-www-form-urlencoded`` body (``token=spat_...``); ``token_type_hint`` is accepted and
ignored (there is one kind of token). Either way any other field is a 400 naming it, as the schema
of both bodies says (no additional properties). A usable token is answered with who it is and what it may do:

    {"active": true, "token_id", "account_id", "account_name", "name", "exp", "iat", "scopes",
     "roles": [{"role_name", "entity_id", "entity_type_name", "entity_region", "source"}]}

(``exp`` and ``iat`` in Unix seconds, ``exp`` null for a token that never expires). Every other
token, whatever the reason (malformed, unknown, revoked, expired, rotated out, disabled account, or
the verifier failing closed), gets exactly ``{"active": false}`` with 200, so the answer never tells
which. A body without a token is the caller's mistake: 400 (415 for another media type). Every
introspection is recorded in the usage log (operation ``introspect``, with the caller's address and
user agent; an unknown token by a keyed hash), and an active one counts as a use of the token
(``token.used``, sliding expiry).

The caller's own authentication and authorisation (the Introspector role) are the API middleware's
business; this handler only introspects. Responses carry ``Cache-Control: no-store``.
"""

import urllib.parse
from datetime import datetime

import msgspec
from aiohttp import web

from services.api.context import service
from services.api.parsing import body_error, decode_body, raw_body
from services.api.problems import UnsupportedMediaType
from services.api.state import CLOCK, USAGE, VERIFIER
from services.auth.principal import Principal, RoleGrant

PATH = "/v3/tokens/introspect"
OPERATION = "introspect"
"""The operation recorded in the usage log for the introspected token's verification."""
MAX_BODY_BYTES = 4096
FORM = "application/x-www-form-urlencoded"
FORM_FIELDS = frozenset({"token", "token_type_hint"})
"""The form's fields, as the JSON body's: any other is a 400, as it is in JSON."""


class IntrospectionRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    token: str
    token_type_hint: str | None = None


class ActiveToken(msgspec.Struct, frozen=True):
    active: bool
    token_id: str
    account_id: str
    account_name: str
    name: str
    exp: int | None
    iat: int
    scopes: tuple[str, ...] | None
    roles: tuple[RoleGrant, ...]


_encoder = msgspec.json.Encoder()
_INACTIVE = _encoder.encode({"active": False})
_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _unix(moment: datetime) -> int:
    return int(moment.timestamp())


def active_body(principal: Principal) -> bytes:
    return _encoder.encode(
        ActiveToken(
            active=True,
            token_id=principal.token_id,
            account_id=principal.account_id,
            account_name=principal.account_name,
            name=principal.token_name,
            exp=_unix(principal.expires_at) if principal.expires_at is not None else None,
            iat=_unix(principal.issued_at),
            scopes=principal.scopes,
            roles=principal.roles,
        )
    )


async def _presented_token(request: web.Request) -> str:
    raw = await raw_body(request, MAX_BODY_BYTES)
    media_type = request.content_type.lower()
    if media_type == FORM:
        try:
            fields = urllib.parse.parse_qs(
                raw.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(raw), max_num_fields=10
            )
        except (UnicodeDecodeError, ValueError):
            raise body_error("body", "request format is invalid") from None
        unknown = sorted(set(fields) - FORM_FIELDS)
        if unknown:
            raise body_error(unknown[0], "is not a field of the introspection request", "unknown_property")
        tokens = fields.get("token", [])
        if len(tokens) != 1:
            raise body_error("token", "exactly one token is required", "required")
        if len(fields.get("token_type_hint", [])) > 1:
            raise body_error("token_type_hint", "must not be repeated", "invalid")
        return tokens[0]
    if media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        return decode_body(raw, IntrospectionRequest).token
    raise UnsupportedMediaType(f"The request body must be application/json or {FORM}")


async def introspect(request: web.Request) -> web.Response:
    verifier, usage, clock = service(request, VERIFIER), service(request, USAGE), service(request, CLOCK)
    presented = await _presented_token(request)
    now = clock()
    verification = await verifier.check(presented, now)
    usage.record_verification(
        verification,
        now,
        OPERATION,
        presented=presented,
        client_address=request.remote,
        user_agent=request.headers.get("User-Agent"),
    )
    verdict = verification.verdict
    if not isinstance(verdict, Principal):
        return web.Response(body=_INACTIVE, content_type="application/json", headers=_HEADERS)
    return web.Response(body=active_body(verdict), content_type="application/json", headers=_HEADERS)


def add_routes(app: web.Application) -> None:
    """Adds the route, which uses the ``VERIFIER``, ``USAGE`` and ``CLOCK`` services."""
    app.router.add_post(PATH, introspect)
