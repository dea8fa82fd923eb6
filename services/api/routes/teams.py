"""/v3/teams and team membership of system accounts (both directions)."""

import uuid
from typing import Annotated

import msgspec
from aiohttp import web

from services.api import representations as show
from services.api.context import admit, authorize, consistent_read, execute, service
from services.api.listing import FilterSpec, LabelFilter, StringFilter, collection, list_query
from services.api.parsing import name_field, read_body, uuid_path_param
from services.api.problems import NotFound
from services.api.queries import accounts as account_queries
from services.api.queries import teams as queries
from services.api.routes import audit
from services.api.routes.common import account_id, json, no_content, team_id
from services.api.state import CLOCK, READ_POOL
from services.authorization import Right
from services.teams import commands

TeamName = Annotated[str, msgspec.Meta(min_length=1, max_length=250)]
TeamDescription = Annotated[str, msgspec.Meta(min_length=1, max_length=250)]
LabelValue = Annotated[str, msgspec.Meta(min_length=1, max_length=63)]
Labels = Annotated[dict[str, LabelValue], msgspec.Meta(max_length=50)]
LabelsUpdate = Annotated[dict[str, LabelValue | None], msgspec.Meta(max_length=50)]

# GET /v3/teams filters by name and by label; the membership lists (both directions) by name only.
TEAM_FILTERS: dict[str, FilterSpec] = {"name": StringFilter(ops=("eq", "contains")), "labels": LabelFilter()}
NAME_FILTER: dict[str, FilterSpec] = {"name": StringFilter(ops=("eq", "contains"))}


def membership_team_id(request: web.Request) -> str:
    """The System Accounts - Team Membership family types ``teamId`` as a plain string (not
    ``format: uuid``) and documents no 400, so there a malformed team id is a 404."""
    return str(
        uuid_path_param(
            request, "teamId", malformed="not_found", not_found_detail="The requested team was not found"
        )
    )


class CreateTeam(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Konnect's CreateTeam types ``description`` as a string: it may be left out, but null is a 400."""

    name: TeamName
    description: TeamDescription | msgspec.UnsetType = msgspec.UNSET
    labels: Labels = {}

    def __post_init__(self) -> None:
        self.name = name_field("name", self.name)


class UpdateTeam(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Only ``labels`` is nullable in Konnect's UpdateTeam; a null name or description is a 400."""

    name: TeamName | msgspec.UnsetType = msgspec.UNSET
    description: TeamDescription | msgspec.UnsetType = msgspec.UNSET
    labels: LabelsUpdate | msgspec.UnsetType | None = msgspec.UNSET

    def __post_init__(self) -> None:
        if isinstance(self.name, str):
            self.name = name_field("name", self.name)


class AddSystemAccountToTeam(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: uuid.UUID


async def create(request: web.Request) -> web.Response:
    admit(request, commands.CreateTeam)
    body = await read_body(request, CreateTeam)
    command = commands.CreateTeam(
        name=body.name,
        description=None if isinstance(body.description, msgspec.UnsetType) else body.description,
        labels=tuple(sorted(body.labels.items())),
    )
    outcome = await execute(request, command)
    return json(show.team(outcome.state), 201)


async def list_teams(request: web.Request) -> web.Response:
    authorize(request, Right.TEAMS_READ)
    query = list_query(request, TEAM_FILTERS)
    await consistent_read(request)
    rows, total = await queries.list_teams(service(request, READ_POOL), query)
    return json(collection([show.team_row(r) for r in rows], query, total))


async def get(request: web.Request) -> web.Response:
    authorize(request, Right.TEAMS_READ)
    await consistent_read(request)
    row = await queries.get_team(service(request, READ_POOL), team_id(request))
    if row is None:
        raise NotFound("The requested team was not found")
    return json(show.team_row(row))


async def update(request: web.Request) -> web.Response:
    admit(request, commands.UpdateTeam)
    body = await read_body(request, UpdateTeam)
    labels = None if isinstance(body.labels, msgspec.UnsetType) or body.labels is None else body.labels
    command = commands.UpdateTeam(
        team_id=team_id(request),
        name=None if isinstance(body.name, msgspec.UnsetType) else body.name,
        description=None if isinstance(body.description, msgspec.UnsetType) else body.description,
        labels=None if labels is None else tuple(sorted(labels.items())),
        labels_given=body.labels is not msgspec.UNSET,
    )
    outcome = await execute(request, command)
    return json(show.team(outcome.state))


async def delete(request: web.Request) -> web.Response:
    admit(request, commands.DeleteTeam)
    await execute(request, commands.DeleteTeam(team_id=team_id(request)))
    return no_content()


async def add_member(request: web.Request) -> web.Response:
    admit(request, commands.AddMember)
    body = await read_body(request, AddSystemAccountToTeam)
    await execute(request, commands.AddMember(team_id=membership_team_id(request), account_id=str(body.id)))
    return no_content(201)


async def remove_member(request: web.Request) -> web.Response:
    admit(request, commands.RemoveMember)
    await execute(
        request, commands.RemoveMember(team_id=membership_team_id(request), account_id=account_id(request))
    )
    return no_content()


async def list_members(request: web.Request) -> web.Response:
    authorize(request, Right.TEAMS_READ)
    team = membership_team_id(request)
    query = list_query(request, NAME_FILTER)
    await consistent_read(request)
    pool = service(request, READ_POOL)
    if await queries.get_team(pool, team) is None:
        raise NotFound("The requested team was not found")
    rows, total = await account_queries.list_team_members(pool, team, query)
    now = service(request, CLOCK)()
    return json(collection([show.account_row(r, now) for r in rows], query, total))


async def list_account_teams(request: web.Request) -> web.Response:
    if (at := audit.as_of_param(request)) is not None:
        return await audit.teams_as_of(request, at)
    authorize(request, Right.TEAMS_READ)
    owner = account_id(request)
    query = list_query(request, NAME_FILTER)
    await consistent_read(request)
    pool = service(request, READ_POOL)
    if await account_queries.get_account(pool, owner) is None:
        raise NotFound("The requested system account was not found")
    rows, total = await queries.list_account_teams(pool, owner, query)
    return json(collection([show.team_row(r) for r in rows], query, total))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v3/teams", list_teams)
    app.router.add_post("/v3/teams", create)
    app.router.add_get("/v3/teams/{teamId}", get)
    app.router.add_patch("/v3/teams/{teamId}", update)
    app.router.add_delete("/v3/teams/{teamId}", delete)
    app.router.add_get("/v3/teams/{teamId}/system-accounts", list_members)
    app.router.add_post("/v3/teams/{teamId}/system-accounts", add_member)
    app.router.add_delete("/v3/teams/{teamId}/system-accounts/{accountId}", remove_member)
    app.router.add_get("/v3/system-accounts/{accountId}/teams", list_account_teams)
