"""/v3/system-accounts/{accountId}/access-tokens: Konnect's issue, list, get, rename, delete, plus our
``/revoke`` (as Konnect does for personal tokens) and ``/rotate``."""

from typing import Annotated

import msgspec
from aiohttp import web

from services.api import representations as show
from services.api.context import admit, authorize, consistent_read, execute, service
from services.api.listing import BoolFilter, FilterSpec, StringFilter, collection, list_query
from services.api.parsing import MAX_DURATION_SECONDS, AwareDateTime, name_field, read_body
from services.api.problems import NotFound
from services.api.queries import accounts as account_queries
from services.api.queries import tokens as queries
from services.api.routes import audit
from services.api.routes.common import account_id, json, no_content, token_id
from services.api.state import CLOCK, READ_POOL
from services.authorization import Right
from services.tokens.commands import DeleteToken, IssueToken, RenameToken, RevokeToken, RotateToken
from services.tokens.handlers import IssuedToken
from services.tokens.model import MAX_GRACE_PERIOD, MAX_REVOCATION_REASON

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
Scope = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
AutoExtend = Annotated[int, msgspec.Meta(ge=1, le=MAX_DURATION_SECONDS)]
"""At most ten years here; the deployment's maximum token lifetime bounds it further."""
Lifetime = Annotated[int, msgspec.Meta(ge=1, le=MAX_DURATION_SECONDS)]
"""``ttl_seconds``: likewise bounded further by the deployment's maximum token lifetime."""
RevocationReason = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_REVOCATION_REASON)]
GracePeriod = Annotated[int, msgspec.Meta(ge=0, le=int(MAX_GRACE_PERIOD.total_seconds()))]
LIST_FILTERS: dict[str, FilterSpec] = {
    "name": StringFilter(ops=("eq", "contains")),
    "federated": BoolFilter(),
}
"""``filter[federated]=true`` lists the short-lived tokens obtained by token exchange, ``false``
the long-lived ones."""


class CreateAccessToken(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    expires_at: AwareDateTime | None = None
    scopes: Annotated[list[Scope], msgspec.Meta(max_length=16)] | None = None
    auto_extend_seconds: AutoExtend | None = None
    max_expires_at: AwareDateTime | None = None
    ttl_seconds: Lifetime | None = None

    def __post_init__(self) -> None:
        self.name = name_field("name", self.name)


class UpdateAccessToken(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name

    def __post_init__(self) -> None:
        self.name = name_field("name", self.name)


class RevokeAccessToken(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The body is optional (no body: no reason given)."""

    reason: RevocationReason | None = None


class RotateAccessToken(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    grace_period_seconds: GracePeriod = 0


def _with_secret(issued: IssuedToken, request: web.Request) -> dict[str, object]:
    return {**show.token(issued.token, service(request, CLOCK)()), "token": issued.secret}


async def create(request: web.Request) -> web.Response:
    admit(request, IssueToken)
    body = await read_body(request, CreateAccessToken)
    command = IssueToken(
        account_id=account_id(request),
        name=body.name,
        expires_at=body.expires_at,
        scopes=tuple(body.scopes) if body.scopes is not None else None,
        auto_extend_seconds=body.auto_extend_seconds,
        max_expires_at=body.max_expires_at,
        ttl_seconds=body.ttl_seconds,
    )
    outcome = await execute(request, command)
    return json(_with_secret(outcome.state, request), 201)


async def list_tokens(request: web.Request) -> web.Response:
    if (at := audit.as_of_param(request)) is not None:
        return await audit.tokens_as_of(request, at)
    authorize(request, Right.TOKENS_READ)
    owner = account_id(request)
    query = list_query(request, LIST_FILTERS)
    await consistent_read(request)
    pool = service(request, READ_POOL)
    if await account_queries.get_account(pool, owner) is None:
        raise NotFound("The requested system account was not found")
    rows, total = await queries.list_tokens(pool, owner, query)
    now = service(request, CLOCK)()
    return json(collection([show.token_row(r, now) for r in rows], query, total))


async def _token_response(request: web.Request) -> web.Response:
    row = await queries.get_token(service(request, READ_POOL), account_id(request), token_id(request))
    if row is None:
        raise NotFound("The requested access token was not found")
    return json(show.token_row(row, service(request, CLOCK)()))


async def get(request: web.Request) -> web.Response:
    if (at := audit.as_of_param(request)) is not None:
        return await audit.token_as_of(request, at)
    authorize(request, Right.TOKENS_READ)
    await consistent_read(request)
    return await _token_response(request)


async def rename(request: web.Request) -> web.Response:
    admit(request, RenameToken)
    body = await read_body(request, UpdateAccessToken)
    await execute(
        request, RenameToken(account_id=account_id(request), token_id=token_id(request), name=body.name)
    )
    return await _token_response(request)


async def revoke(request: web.Request) -> web.Response:
    admit(request, RevokeToken)
    body = await read_body(request, RevokeAccessToken)
    command = RevokeToken(account_id=account_id(request), token_id=token_id(request), reason=body.reason)
    await execute(request, command)
    return await _token_response(request)


async def rotate(request: web.Request) -> web.Response:
    admit(request, RotateToken)
    body = await read_body(request, RotateAccessToken)
    command = RotateToken(
        account_id=account_id(request),
        token_id=token_id(request),
        grace_period_seconds=body.grace_period_seconds,
    )
    outcome = await execute(request, command)
    return json(_with_secret(outcome.state, request))


async def delete(request: web.Request) -> web.Response:
    admit(request, DeleteToken)
    await execute(request, DeleteToken(account_id=account_id(request), token_id=token_id(request)))
    return no_content()


def add_routes(app: web.Application) -> None:
    base = "/v3/system-accounts/{accountId}/access-tokens"
    app.router.add_get(base, list_tokens)
    app.router.add_post(base, create)
    app.router.add_get(base + "/{tokenId}", get)
    app.router.add_patch(base + "/{tokenId}", rename)
    app.router.add_delete(base + "/{tokenId}", delete)
    app.router.add_patch(base + "/{tokenId}/revoke", revoke)
    app.router.add_post(base + "/{tokenId}/rotate", rotate)
