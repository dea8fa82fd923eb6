"""/v3/system-accounts: create (with the ``assigned_roles`` and ``team_ids`` extension), list, get,
update (incl. the ``enabled`` and ``expires_at`` extensions), delete."""

import uuid
from typing import Annotated, Any, TypeVar

import msgspec
from aiohttp import web

from services.accounts.commands import CreateAccount, DeleteAccount, UpdateAccount
from services.api import representations as show
from services.api.context import admit, authorize, consistent_read, execute, service
from services.api.listing import BoolFilter, FilterSpec, StringFilter, collection, list_query
from services.api.parsing import MAX_DURATION_SECONDS, AwareDateTime, name_field, read_body
from services.api.problems import NotFound
from services.api.queries import accounts as queries
from services.api.routes import audit
from services.api.routes.common import account_id, json, no_content
from services.api.routes.roles import AssignRole
from services.api.state import CLOCK, READ_POOL
from services.authorization import Right
from services.roles.assignment import Role

T = TypeVar("T")
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
Description = Annotated[str, msgspec.Meta(max_length=1000)]

LIST_FILTERS: dict[str, FilterSpec] = {
    "name": StringFilter(ops=("eq", "contains")),
    "description": StringFilter(ops=("eq", "contains")),
    "konnect_managed": BoolFilter(),
}


RotationPeriod = Annotated[int, msgspec.Meta(ge=0, le=MAX_DURATION_SECONDS)]
MAX_INITIAL_ROLES = 50
MAX_INITIAL_TEAMS = 50
InitialRoles = Annotated[list[AssignRole], msgspec.Meta(max_length=MAX_INITIAL_ROLES)]
InitialTeams = Annotated[list[uuid.UUID], msgspec.Meta(max_length=MAX_INITIAL_TEAMS)]


class CreateSystemAccount(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    description: Description
    konnect_managed: bool = False
    rotation_period_seconds: RotationPeriod | None = None
    """Extension: tokens older than this get ``token.rotation_due`` (default: the deployment's)."""
    assigned_roles: InitialRoles | msgspec.UnsetType = msgspec.UNSET
    """Extension: roles the account holds from its creation, each as the assign-role request has it."""
    team_ids: InitialTeams | msgspec.UnsetType = msgspec.UNSET
    """Extension: teams the account is a member of from its creation."""
    expires_at: AwareDateTime | None = None
    """Extension: the end of the account's lifetime (null: none)."""

    def __post_init__(self) -> None:
        self.name = name_field("name", self.name)


class UpdateSystemAccount(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A field left out keeps its value; null is refused (Konnect's fields are not nullable), except
    ``rotation_period_seconds``, where null (like 0) returns the account to the deployment's period,
    and ``expires_at``, where null ends the account's lifetime (it then has none)."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    rotation_period_seconds: RotationPeriod | msgspec.UnsetType | None = msgspec.UNSET
    expires_at: AwareDateTime | msgspec.UnsetType | None = msgspec.UNSET

    def __post_init__(self) -> None:
        if isinstance(self.name, str):
            self.name = name_field("name", self.name)


def _given(value: T | msgspec.UnsetType) -> T | None:
    return None if value is msgspec.UNSET else value


async def create(request: web.Request) -> web.Response:
    """The answer lists the account's roles and teams when the request named either."""
    admit(request, CreateAccount)
    body = await read_body(request, CreateSystemAccount)
    roles = _given(body.assigned_roles) or []
    team_ids = tuple(str(team) for team in _given(body.team_ids) or [])
    command = CreateAccount(
        name=body.name,
        description=body.description,
        konnect_managed=body.konnect_managed,
        rotation_period_seconds=body.rotation_period_seconds,
        assigned_roles=tuple(
            Role(
                role_name=role.role_name,
                entity_id=str(role.entity_id),
                entity_type_name=role.entity_type_name,
                entity_region=role.entity_region,
            )
            for role in roles
        ),
        team_ids=team_ids,
        expires_at=body.expires_at,
    )
    outcome = await execute(request, command)
    shown: dict[str, Any] = show.account(outcome.state, service(request, CLOCK)())
    if body.assigned_roles is not msgspec.UNSET or body.team_ids is not msgspec.UNSET:
        shown["assigned_roles"] = [show.assigned_role(grant) for grant in outcome.state.roles.values()]
        shown["team_ids"] = list(team_ids)
    return json(shown, 201)


async def list_accounts(request: web.Request) -> web.Response:
    authorize(request, Right.ACCOUNTS_READ)
    query = list_query(request, LIST_FILTERS)
    await consistent_read(request)
    rows, total = await queries.list_accounts(service(request, READ_POOL), query)
    now = service(request, CLOCK)()
    return json(collection([show.account_row(r, now) for r in rows], query, total))


async def get(request: web.Request) -> web.Response:
    if (at := audit.as_of_param(request)) is not None:
        return await audit.account_as_of(request, at)
    authorize(request, Right.ACCOUNTS_READ)
    await consistent_read(request)
    row = await queries.get_account(service(request, READ_POOL), account_id(request))
    if row is None:
        raise NotFound("The requested system account was not found")
    return json(show.account_row(row, service(request, CLOCK)()))


async def update(request: web.Request) -> web.Response:
    admit(request, UpdateAccount)
    body = await read_body(request, UpdateSystemAccount)
    period = body.rotation_period_seconds
    command = UpdateAccount(
        account_id=account_id(request),
        name=_given(body.name),
        description=_given(body.description),
        enabled=_given(body.enabled),
        rotation_period_seconds=0 if period is None else _given(period),
        expires_at=body.expires_at,
    )
    outcome = await execute(request, command)
    return json(show.account(outcome.state, service(request, CLOCK)()))


async def delete(request: web.Request) -> web.Response:
    admit(request, DeleteAccount)
    await execute(request, DeleteAccount(account_id=account_id(request)))
    return no_content()


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v3/system-accounts", list_accounts)
    app.router.add_post("/v3/system-accounts", create)
    app.router.add_get("/v3/system-accounts/{accountId}", get)
    app.router.add_patch("/v3/system-accounts/{accountId}", update)
    app.router.add_delete("/v3/system-accounts/{accountId}", delete)
