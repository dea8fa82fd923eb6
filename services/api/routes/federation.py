"""Federated credentials of a system account (our extension):
``/v3/system-accounts/{accountId}/federated-credentials[/{credentialId}]``.

Writes are commands of the account (``tokens:write``, and the caller must cover the account as for
issuing it an unscoped token); reads need ``tokens:read`` and come from ``rm_federated_credentials``,
or, with ``as_of``, from the account's stream folded up to that instant (``audit:read``, as for
roles). ``github_actions`` is the GitHub Actions preset: it fixes the issuer and asks for the
repository and its owner's numeric id.
"""

from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web

from events import FrozenMap
from events.federation import ClaimCondition
from services import federation
from services.accounts.commands import (
    CreateFederatedCredential,
    DeleteFederatedCredential,
    UpdateFederatedCredential,
)
from services.api import representations as show
from services.api.context import admit, authorize, consistent_read, execute, service
from services.api.listing import StringFilter, collection, list_query
from services.api.parsing import name_field, read_body, uuid_path_param
from services.api.problems import NotFound
from services.api.queries import accounts as account_queries
from services.api.queries import federation as queries
from services.api.queries import tokens as token_queries
from services.api.routes import audit
from services.api.routes.common import account_id, json, no_content
from services.api.state import CLOCK, READ_POOL
from services.authorization import Right
from services.commands import Invalid
from services.federation import Definition

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
ClaimName = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern="^[A-Za-z0-9_.:-]+$")]
Values = Annotated[list[Text], msgspec.Meta(min_length=1, max_length=16)]
Audiences = Annotated[list[Text], msgspec.Meta(min_length=1, max_length=16)]
Claims = Annotated[list[ClaimName], msgspec.Meta(max_length=16)]
Lifetime = Annotated[int, msgspec.Meta(ge=60, le=86400)]
Issuer = Annotated[
    str,
    msgspec.Meta(min_length=9, max_length=255, pattern="^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[!-~]*)?$"),
]
OwnerId = Annotated[str, msgspec.Meta(min_length=1, max_length=20, pattern="^[0-9]+$")]

TOKEN_FILTERS: dict[str, StringFilter] = {}
FILTERS = {"name": StringFilter(ops=("eq",), bare=True), "issuer": StringFilter(ops=("eq",), bare=True)}


class Condition(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    claim: ClaimName
    operator: Literal["equals", "one_of", "glob"]
    values: Values


Conditions = Annotated[list[Condition], msgspec.Meta(max_length=16)]


class GitHubActions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    repository: Text
    repository_owner_id: OwnerId


class CreateBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``issuer`` and ``subject`` are required unless ``github_actions`` is given, which fixes the
    issuer (and defaults the subject to any run of the repository)."""

    name: Text
    issuer: Issuer | msgspec.UnsetType = msgspec.UNSET
    subject: Text | msgspec.UnsetType = msgspec.UNSET
    audiences: Audiences | msgspec.UnsetType = msgspec.UNSET
    conditions: Conditions = []
    required_claims: Claims = []
    max_token_lifetime: Lifetime | msgspec.UnsetType = msgspec.UNSET
    github_actions: GitHubActions | msgspec.UnsetType = msgspec.UNSET

    def __post_init__(self) -> None:
        self.name = name_field("name", self.name)


class UpdateBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A field left out keeps its value."""

    name: Text | msgspec.UnsetType = msgspec.UNSET
    issuer: Issuer | msgspec.UnsetType = msgspec.UNSET
    subject: Text | msgspec.UnsetType = msgspec.UNSET
    audiences: Audiences | msgspec.UnsetType = msgspec.UNSET
    conditions: Conditions | msgspec.UnsetType = msgspec.UNSET
    required_claims: Claims | msgspec.UnsetType = msgspec.UNSET
    max_token_lifetime: Lifetime | msgspec.UnsetType = msgspec.UNSET

    def __post_init__(self) -> None:
        if isinstance(self.name, str):
            self.name = name_field("name", self.name)


def _conditions(conditions: list[Condition]) -> tuple[ClaimCondition, ...]:
    return tuple(
        ClaimCondition(claim=c.claim, operator=c.operator, values=tuple(c.values)) for c in conditions
    )


def _given(value: Any) -> Any:
    return None if value is msgspec.UNSET else value


def _definition(body: CreateBody) -> Definition:
    audiences = None if body.audiences is msgspec.UNSET else tuple(body.audiences)
    lifetime = _given(body.max_token_lifetime)
    if body.github_actions is not msgspec.UNSET:
        if body.issuer is not msgspec.UNSET:
            raise Invalid("issuer", "is fixed by github_actions")
        preset = federation.github_actions(
            body.name,
            body.github_actions.repository,
            body.github_actions.repository_owner_id,
            _given(body.subject),
            audiences=audiences,
            max_token_lifetime_seconds=lifetime,
        )
        return msgspec.structs.replace(
            preset,
            conditions=(*preset.conditions, *_conditions(body.conditions)),
            required_claims=(*preset.required_claims, *body.required_claims),
        )
    for field in ("issuer", "subject"):
        if getattr(body, field) is msgspec.UNSET:
            raise Invalid(field, "is required unless github_actions is given", "required")
    return Definition(
        name=body.name,
        issuer=str(body.issuer),
        subject=str(body.subject),
        audiences=audiences,
        conditions=_conditions(body.conditions),
        required_claims=tuple(body.required_claims),
        max_token_lifetime_seconds=lifetime,
    )


def _changes(body: UpdateBody) -> FrozenMap[str, Any]:
    changes: dict[str, Any] = {}
    for field in ("name", "issuer", "subject"):
        if (value := getattr(body, field)) is not msgspec.UNSET:
            changes[field] = value
    if body.audiences is not msgspec.UNSET:
        changes["audiences"] = tuple(body.audiences)
    if body.conditions is not msgspec.UNSET:
        changes["conditions"] = _conditions(body.conditions)
    if body.required_claims is not msgspec.UNSET:
        changes["required_claims"] = tuple(body.required_claims)
    if body.max_token_lifetime is not msgspec.UNSET:
        changes["max_token_lifetime_seconds"] = body.max_token_lifetime
    return FrozenMap(changes)


def credential_id(request: web.Request) -> str:
    return str(
        uuid_path_param(
            request,
            "credentialId",
            malformed="not_found",
            not_found_detail="The federated credential was not found",
        )
    )


async def create(request: web.Request) -> web.Response:
    admit(request, CreateFederatedCredential)
    owner = account_id(request)
    body = await read_body(request, CreateBody)
    outcome = await execute(
        request, CreateFederatedCredential(account_id=owner, definition=_definition(body))
    )
    return json(show.federated_credential(outcome.state), 201)


async def update(request: web.Request) -> web.Response:
    admit(request, UpdateFederatedCredential)
    owner, credential = account_id(request), credential_id(request)
    body = await read_body(request, UpdateBody)
    command = UpdateFederatedCredential(account_id=owner, credential_id=credential, changes=_changes(body))
    outcome = await execute(request, command)
    return json(show.federated_credential(outcome.state))


async def delete(request: web.Request) -> web.Response:
    admit(request, DeleteFederatedCredential)
    command = DeleteFederatedCredential(account_id=account_id(request), credential_id=credential_id(request))
    await execute(request, command)
    return no_content()


async def list_credentials(request: web.Request) -> web.Response:
    if (at := audit.as_of_param(request)) is not None:
        return await audit.federated_credentials_as_of(request, at)
    authorize(request, Right.TOKENS_READ)
    owner = account_id(request)
    query = list_query(request, FILTERS)
    await consistent_read(request)
    pool = service(request, READ_POOL)
    if await account_queries.get_account(pool, owner) is None:
        raise NotFound("The requested system account was not found")
    rows, total = await queries.list_credentials(pool, owner, query)
    return json(collection([show.federated_credential_row(r) for r in rows], query, total))


async def get_credential(request: web.Request) -> web.Response:
    authorize(request, Right.TOKENS_READ)
    await consistent_read(request)
    row = await queries.get_credential(
        service(request, READ_POOL), account_id(request), credential_id(request)
    )
    if row is None:
        raise NotFound("The federated credential was not found")
    return json(show.federated_credential_row(row))


async def list_tokens(request: web.Request) -> web.Response:
    """The tokens obtained through the credential by the token exchange (kept apart from the
    account's long-lived ones, which ``.../access-tokens`` lists with them)."""
    authorize(request, Right.TOKENS_READ)
    owner, credential = account_id(request), credential_id(request)
    query = list_query(request, TOKEN_FILTERS)
    await consistent_read(request)
    pool = service(request, READ_POOL)
    if await account_queries.get_account(pool, owner) is None:
        raise NotFound("The requested system account was not found")
    rows, total = await token_queries.list_federated_tokens(pool, owner, credential, query)
    now = service(request, CLOCK)()
    return json(collection([show.token_row(r, now) for r in rows], query, total))


def add_routes(app: web.Application) -> None:
    base = "/v3/system-accounts/{accountId}/federated-credentials"
    app.router.add_get(base, list_credentials)
    app.router.add_post(base, create)
    app.router.add_get(base + "/{credentialId}", get_credential)
    app.router.add_patch(base + "/{credentialId}", update)
    app.router.add_delete(base + "/{credentialId}", delete)
    app.router.add_get(base + "/{credentialId}/access-tokens", list_tokens)
