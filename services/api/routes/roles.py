"""Role assignments of system accounts and teams, the role catalogue (/v3/roles) and the
organization (/v3/organizations/me) whose id Identity roles are granted on."""

import contextlib
import uuid
from typing import Annotated, Literal

import msgspec
from aiohttp import web

from services import role_holders
from services.api import representations as show
from services.api.context import admit, authorize, consistent_read, execute, service
from services.api.listing import ListQuery, StringFilter, collection, list_query, parse_list_query
from services.api.parsing import read_body
from services.api.problems import NotFound
from services.api.queries import accounts as account_queries
from services.api.queries import roles as queries
from services.api.queries import teams as team_queries
from services.api.routes import audit
from services.api.routes.common import account_id, account_role_id, json, no_content, team_id, team_role_id
from services.api.state import CATALOGUE, ORGANIZATION, READ_POOL
from services.authorization import Right

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
Region = Literal["us", "eu", "au", "me", "in", "sg", "*"]

ACCOUNT_ROLE_FILTERS = {
    "role_name": StringFilter(ops=("eq",), bare=True),
    "entity_type_name": StringFilter(ops=("eq",), bare=True),
    "entity_id": StringFilter(ops=("eq",), bare=True),
}
TEAM_ROLE_FILTERS = {
    "role_name": StringFilter(ops=("eq",), bare=True),
    "entity_type_name": StringFilter(ops=("eq",), bare=True),
}


class AssignRole(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    role_name: Text
    entity_id: uuid.UUID
    entity_type_name: Text
    entity_region: Region


def _with_canonical_entity_id(query: ListQuery) -> ListQuery:
    """``entity_id`` is a UUID (stored and shown in lower case): a filter value that is one, in any
    case, matches it; any other value matches nothing."""
    filters = []
    for item in query.filters:
        if item.field == "entity_id" and isinstance(item.value, str):
            with contextlib.suppress(ValueError):
                item = msgspec.structs.replace(item, value=str(uuid.UUID(item.value)))
        filters.append(item)
    return msgspec.structs.replace(query, filters=tuple(filters))


def _holder(request: web.Request) -> role_holders.Holder:
    """The account or the team of the path (each family with its own answer to a malformed id)."""
    if "accountId" in request.match_info:
        return role_holders.AccountHolder(account_id=account_id(request))
    return role_holders.TeamHolder(team_id=team_id(request))


async def assign(request: web.Request) -> web.Response:
    admit(request, role_holders.AssignRole)
    body = await read_body(request, AssignRole)
    command = role_holders.AssignRole(
        holder=_holder(request),
        role_name=body.role_name,
        entity_id=str(body.entity_id),
        entity_type_name=body.entity_type_name,
        entity_region=body.entity_region,
    )
    outcome = await execute(request, command)
    return json(show.assigned_role(outcome.state), 201)


async def unassign(request: web.Request) -> web.Response:
    admit(request, role_holders.UnassignRole)
    holder = _holder(request)
    assignment = (
        account_role_id(request) if isinstance(holder, role_holders.AccountHolder) else team_role_id(request)
    )
    await execute(request, role_holders.UnassignRole(holder=holder, assignment_id=assignment))
    return no_content()


async def list_account_roles(request: web.Request) -> web.Response:
    if (at := audit.as_of_param(request)) is not None:
        return await audit.roles_as_of(request, at)
    authorize(request, Right.ROLES_READ)
    owner = account_id(request)
    query = _with_canonical_entity_id(list_query(request, ACCOUNT_ROLE_FILTERS))
    await consistent_read(request)
    pool = service(request, READ_POOL)
    if await account_queries.get_account(pool, owner) is None:
        raise NotFound("The requested system account was not found")
    rows, total = await queries.list_assignments(pool, "account", owner, query)
    return json(collection([show.assigned_role_row(r) for r in rows], query, total))


async def get_account_role(request: web.Request) -> web.Response:
    authorize(request, Right.ROLES_READ)
    await consistent_read(request)
    row = await queries.get_assignment(
        service(request, READ_POOL), "account", account_id(request), account_role_id(request)
    )
    if row is None:
        raise NotFound("The assigned role was not found")
    return json(show.assigned_role_row(row))


async def list_team_roles(request: web.Request) -> web.Response:
    authorize(request, Right.ROLES_READ)
    owner = team_id(request)
    query = list_query(request, TEAM_ROLE_FILTERS)
    await consistent_read(request)
    pool = service(request, READ_POOL)
    if await team_queries.get_team(pool, owner) is None:
        raise NotFound("The requested team was not found")
    rows, total = await queries.list_assignments(pool, "team", owner, query)
    return json(collection([show.assigned_role_row(r) for r in rows], query, total))


async def get_team_role(request: web.Request) -> web.Response:
    authorize(request, Right.ROLES_READ)
    await consistent_read(request)
    row = await queries.get_assignment(
        service(request, READ_POOL), "team", team_id(request), team_role_id(request)
    )
    if row is None:
        raise NotFound("The assigned role was not found")
    return json(show.assigned_role_row(row))


async def catalogue(request: web.Request) -> web.Response:
    """Any authenticated caller (Konnect documents no 403 here); no query parameter is accepted."""
    parse_list_query(request.query, {}, paginated=False)
    return web.Response(text=service(request, CATALOGUE).document, content_type="application/json")


async def organization(request: web.Request) -> web.Response:
    """Any authenticated caller: Konnect documents only 200 and 401, and the id is what every
    caller needs to name Identity roles."""
    org = service(request, ORGANIZATION)
    created = show.timestamp(org.created_at)
    return json(
        {
            "id": org.organization_id,
            "name": org.name,
            "created_at": created,
            "updated_at": created,
            "state": "active",
        }
    )


def add_routes(app: web.Application) -> None:
    account_roles = "/v3/system-accounts/{accountId}/assigned-roles"
    app.router.add_get(account_roles, list_account_roles)
    app.router.add_post(account_roles, assign)
    app.router.add_get(account_roles + "/{roleId}", get_account_role)
    app.router.add_delete(account_roles + "/{roleId}", unassign)
    team_roles = "/v3/teams/{teamId}/assigned-roles"
    app.router.add_get(team_roles, list_team_roles)
    app.router.add_post(team_roles, assign)
    app.router.add_get(team_roles + "/{roleId}", get_team_role)
    app.router.add_delete(team_roles + "/{roleId}", unassign)
    app.router.add_get("/v3/roles", catalogue)
    app.router.add_get("/v3/organizations/me", organization)
