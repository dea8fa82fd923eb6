"""Teams (list, create; one team's page: edit, delete with typed confirmation, members, roles) and
the role catalogue."""

from typing import Any

from aiohttp import web

from services import role_holders
from services.api import representations as show
from services.api.problems import NotFound
from services.api.queries import teams as team_queries
from services.api.routes.teams import CreateTeam as CreateTeamBody
from services.api.routes.teams import UpdateTeam as UpdateTeamBody
from services.authorization import Right
from services.console import queries
from services.console.context import (
    act,
    admit,
    catalogue,
    decoded,
    form_text,
    invalid,
    organization_id,
    page,
    read_consistently,
    read_pool,
    redirect,
)
from services.console.views.accounts import form_uuid, path_uuid, role_body, typed_confirmation
from services.teams import commands

DONE = {
    "created": "The team was created.",
    "updated": "The team was saved.",
    "deleted": "The team was deleted.",
    "member-added": "The account was added.",
    "member-removed": "The account was removed.",
    "role-assigned": "The role was assigned.",
    "role-unassigned": "The role was unassigned.",
}
MAX_LABEL_LINES = 50


def team_path(team_id: str, done: str | None = None) -> str:
    return f"/console/teams/{team_id}" + (f"?done={done}" if done else "")


def _labels(request: web.Request) -> dict[str, str]:
    """``labels`` holds one ``key=value`` a line."""
    lines = [line.strip() for line in (form_text(request, "labels") or "").splitlines() if line.strip()]
    if len(lines) > MAX_LABEL_LINES:
        reason = f"must have at most {MAX_LABEL_LINES} lines"
        raise invalid("labels", reason, "max_items")
    labels: dict[str, str] = {}
    for line in lines:
        key, separator, value = line.partition("=")
        if not separator or not key.strip():
            reason = "must hold one key=value a line"
            raise invalid("labels", reason, "is_label")
        labels[key.strip()] = value.strip()
    return labels


def _fields(request: web.Request) -> dict[str, Any]:
    fields: dict[str, Any] = {"name": form_text(request, "name") or "", "labels": _labels(request)}
    description = (form_text(request, "description") or "").strip()
    if description:
        fields["description"] = description
    return fields


async def list_teams(request: web.Request) -> web.Response:
    await read_consistently(request, Right.TEAMS_READ)
    teams = await queries.all_teams(read_pool(request))
    return page(request, "teams.html", {"teams": teams, "done": DONE.get(request.query.get("done", ""))})


async def create_team(request: web.Request) -> web.Response:
    admit(request, commands.CreateTeam)
    body = decoded(_fields(request), CreateTeamBody)
    description = body.description if isinstance(body.description, str) else None
    command = commands.CreateTeam(
        name=body.name, description=description, labels=tuple(sorted(body.labels.items()))
    )
    outcome = await act(request, command)
    return redirect(team_path(outcome.state.team_id, "created"))


async def team_page(request: web.Request) -> web.Response:
    team_id = path_uuid(request, "teamId", "team")
    current = await read_consistently(request, Right.TEAMS_READ)
    pool = read_pool(request)
    row = await team_queries.get_team(pool, team_id)
    if row is None:
        raise NotFound("The requested team was not found")
    members = await queries.team_members(pool, team_id)
    present = {member["id"] for member in members}
    return page(
        request,
        "team.html",
        {
            "team": show.team_row(row),
            "members": members,
            "candidates": [a for a in await queries.account_choices(pool) if a["id"] not in present]
            if current.can(Right.ACCOUNTS_READ)
            else [],
            "roles": await queries.holder_roles(pool, "team", team_id)
            if current.can(Right.ROLES_READ)
            else None,
            "catalogue": catalogue(request),
            "organization_id": organization_id(request),
            "done": DONE.get(request.query.get("done", "")),
        },
    )


async def update_team(request: web.Request) -> web.Response:
    admit(request, commands.UpdateTeam)
    team_id = path_uuid(request, "teamId", "team")
    fields = _fields(request)
    body = decoded(fields, UpdateTeamBody)
    labels = body.labels if isinstance(body.labels, dict) else {}
    row = await team_queries.get_team(read_pool(request), team_id)
    if row is None:
        raise NotFound("The requested team was not found")
    # The form shows every label: one left out is removed.
    removed = [(key, None) for key in show.team_row(row)["labels"] if key not in labels]
    command = commands.UpdateTeam(
        team_id=team_id,
        name=body.name if isinstance(body.name, str) else None,
        description=body.description if isinstance(body.description, str) else None,
        labels=(*sorted(labels.items()), *removed),
        labels_given=True,
    )
    await act(request, command)
    return redirect(team_path(team_id, "updated"))


async def delete_team(request: web.Request) -> web.Response:
    admit(request, commands.DeleteTeam)
    team_id = path_uuid(request, "teamId", "team")
    row = await team_queries.get_team(read_pool(request), team_id)
    if row is None:
        raise NotFound("The requested team was not found")
    typed_confirmation(request, row["name"])
    await act(request, commands.DeleteTeam(team_id=team_id))
    return redirect("/console/teams?done=deleted")


async def add_member(request: web.Request) -> web.Response:
    admit(request, commands.AddMember)
    team_id = path_uuid(request, "teamId", "team")
    account_id = form_uuid(request, "account_id", "accounts")
    await act(request, commands.AddMember(team_id=team_id, account_id=account_id))
    return redirect(team_path(team_id, "member-added"))


async def remove_member(request: web.Request) -> web.Response:
    admit(request, commands.RemoveMember)
    team_id = path_uuid(request, "teamId", "team")
    account_id = path_uuid(request, "accountId", "system account")
    await act(request, commands.RemoveMember(team_id=team_id, account_id=account_id))
    return redirect(team_path(team_id, "member-removed"))


async def assign_role(request: web.Request) -> web.Response:
    admit(request, role_holders.AssignRole)
    team_id = path_uuid(request, "teamId", "team")
    body = role_body(request)
    command = role_holders.AssignRole(
        holder=role_holders.TeamHolder(team_id=team_id),
        role_name=body.role_name,
        entity_id=str(body.entity_id),
        entity_type_name=body.entity_type_name,
        entity_region=body.entity_region,
    )
    await act(request, command)
    return redirect(team_path(team_id, "role-assigned"))


async def unassign_role(request: web.Request) -> web.Response:
    admit(request, role_holders.UnassignRole)
    team_id = path_uuid(request, "teamId", "team")
    assignment = path_uuid(request, "roleId", "assigned role")
    holder = role_holders.TeamHolder(team_id=team_id)
    await act(request, role_holders.UnassignRole(holder=holder, assignment_id=assignment))
    return redirect(team_path(team_id, "role-unassigned"))


async def role_catalogue(request: web.Request) -> web.Response:
    """Any signed-in token may read it, as ``GET /v3/roles``."""
    return page(request, "roles.html", {"catalogue": catalogue(request)})


def add_routes(app: web.Application) -> None:
    base = "/teams/{teamId}"
    app.router.add_get("/teams", list_teams)
    app.router.add_post("/teams", create_team)
    app.router.add_get(base, team_page)
    app.router.add_post(base + "/edit", update_team)
    app.router.add_post(base + "/delete", delete_team)
    app.router.add_post(base + "/members", add_member)
    app.router.add_post(base + "/members/{accountId}/remove", remove_member)
    app.router.add_post(base + "/roles", assign_role)
    app.router.add_post(base + "/roles/{roleId}/unassign", unassign_role)
    app.router.add_get("/roles", role_catalogue)
