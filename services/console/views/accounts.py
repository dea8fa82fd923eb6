"""The accounts list (search, filters, pagination, create) and one account's page: its fields (edit,
enable/disable, delete with typed confirmation), tokens, roles (direct and through teams, assign and
unassign) and teams (add and remove)."""

import uuid
from typing import Any

from aiohttp import web

from services import role_holders
from services.accounts.commands import CreateAccount, DeleteAccount, UpdateAccount
from services.api import representations as show
from services.api.parsing import bounded_integer, query_problem, query_text
from services.api.problems import BadRequest, InvalidParameter, NotFound
from services.api.queries import accounts as account_queries
from services.api.queries import tokens as token_queries
from services.api.routes.accounts import CreateSystemAccount, UpdateSystemAccount
from services.api.routes.audit import WHOLE_LIST
from services.api.routes.roles import AssignRole
from services.authorization import SCOPES, Right
from services.console import queries
from services.console.context import (
    act,
    admit,
    allow_never,
    catalogue,
    decoded,
    form_text,
    invalid,
    now,
    organization_id,
    page,
    read_consistently,
    read_pool,
    redirect,
    viewer,
)
from services.teams.commands import AddMember, RemoveMember
from services.tokens.handlers import IssuedToken
from services.tokens.model import REVOCATION_CODES

DONE = {
    "created": "The account was created.",
    "updated": "The account was saved.",
    "enabled": "The account was enabled: its tokens work again.",
    "disabled": "The account was disabled: its tokens stop working at once.",
    "deleted": "The account was deleted.",
    "revoked": "The token was revoked.",
    "renamed": "The token was renamed.",
    "token-deleted": "The token was deleted.",
    "role-assigned": "The role was assigned.",
    "role-unassigned": "The role was unassigned.",
    "team-added": "The account was added to the team.",
    "team-removed": "The account was removed from the team.",
}
MAX_PAGE = 100_000
TOKEN_FIELDS = (
    "id",
    "name",
    "created_at",
    "expires_at",
    "last_used_at",
    "state",
    "revoked_at",
    "scopes",
    "auto_extend_seconds",
    "max_expires_at",
)


def token_fields(shown: dict[str, Any]) -> dict[str, Any]:
    """A token as the API shows it, with the fields it leaves out (never used, never expires...) as
    None, for the templates."""
    return {name: shown.get(name) for name in TOKEN_FIELDS}


def done_message(request: web.Request) -> str | None:
    return DONE.get(request.query.get("done", ""))


def path_uuid(request: web.Request, name: str, what: str) -> str:
    """A path id: a malformed one is a 404, as in the API's System Accounts family."""
    try:
        return str(uuid.UUID(request.match_info[name]))
    except ValueError:
        raise NotFound(f"The requested {what} was not found") from None


def account_path(account_id: str, done: str | None = None) -> str:
    return f"/console/accounts/{account_id}" + (f"?done={done}" if done else "")


def _choice(name: str, raw: str | None, choices: dict[str, Any], problems: list[InvalidParameter]) -> Any:
    if raw is None or raw == "":
        return None
    if raw not in choices:
        problems.append(query_problem(name, "is not one of the choices", "invalid"))
        return None
    return choices[raw]


def account_filter(request: web.Request) -> queries.AccountFilter:
    """The list's query string, bounded as the API's (text without NUL, at most 1024 characters)."""
    problems: list[InvalidParameter] = []
    query = request.query
    search = query_text("q", query["q"], problems) if query.get("q") else None
    team = query.get("team") or None
    if team is not None:
        try:
            team = str(uuid.UUID(team))
        except ValueError:
            problems.append(query_problem("team", "must be a team id", "is_uuid"))
            team = None
    number = 1
    if query.get("page"):
        parsed = bounded_integer(query["page"], 1, MAX_PAGE)
        if parsed is None:
            problems.append(query_problem("page", f"must be an integer from 1 to {MAX_PAGE}", "invalid"))
        number = parsed or 1
    selection = queries.AccountFilter(
        search=(search or "").strip(),
        enabled=_choice("enabled", query.get("enabled"), {"enabled": True, "disabled": False}, problems),
        managed=_choice("managed", query.get("managed"), {"yes": True, "no": False}, problems),
        team_id=team,
        expiring=query.get("expiring") == "1",
        unused=query.get("unused") == "1",
        page=number,
    )
    if problems:
        raise BadRequest(problems)
    return selection


def _page_link(request: web.Request, number: int) -> str:
    return str(request.rel_url.update_query(page=str(number)))


async def list_accounts(request: web.Request) -> web.Response:
    selection = account_filter(request)
    await read_consistently(request, Right.ACCOUNTS_READ)
    pool = read_pool(request)
    rows, total = await queries.list_accounts(pool, selection, now(request))
    pages = max(1, -(-total // queries.PAGE_SIZE))
    if selection.page > pages:
        # Past the end (a narrowed search, an old link): the last page, not "Page 7 of 2".
        raise web.HTTPSeeOther(_page_link(request, pages))
    return page(
        request,
        "accounts.html",
        {
            "accounts": rows,
            "total": total,
            "selection": selection,
            "teams": await queries.all_teams(pool),
            "page_number": selection.page,
            "pages": pages,
            "previous": _page_link(request, selection.page - 1) if selection.page > 1 else None,
            "next": _page_link(request, selection.page + 1) if selection.page < pages else None,
            "done": done_message(request),
        },
    )


async def create_account(request: web.Request) -> web.Response:
    admit(request, CreateAccount)
    body = decoded(
        {"name": form_text(request, "name") or "", "description": form_text(request, "description") or ""},
        CreateSystemAccount,
    )
    outcome = await act(request, CreateAccount(name=body.name, description=body.description))
    return redirect(account_path(outcome.state.account_id, "created"))


async def account_context(request: web.Request, account_id: str) -> dict[str, Any]:
    """Everything the account page shows (the one-time secret panel adds ``issued``). A section
    the token may not read (its tokens, roles or teams) is None, and the page says so."""
    pool = read_pool(request)
    row = await account_queries.get_account(pool, account_id)
    if row is None:
        raise NotFound("The requested system account was not found")
    at = now(request)
    may = viewer(request).can
    tokens = None
    if may(Right.TOKENS_READ):
        rows, _ = await token_queries.list_tokens(pool, account_id, WHOLE_LIST)
        tokens = [
            {**token_fields(show.token_row(token, at)), "revoke_reason": token["revoke_reason"]}
            for token in rows
        ]
    member_of = await queries.account_teams(pool, account_id) if may(Right.TEAMS_READ) else None
    joined = {team["id"] for team in member_of or ()}
    return {
        "account": show.account_row(row, at),
        "tokens": tokens,
        "roles": await queries.account_roles(pool, account_id) if may(Right.ROLES_READ) else None,
        "teams": member_of,
        "other_teams": [team for team in await queries.all_teams(pool) if team["id"] not in joined]
        if member_of is not None
        else [],
        "catalogue": catalogue(request),
        "organization_id": organization_id(request),
        "scopes": SCOPES,
        "revocation_codes": REVOCATION_CODES,
        "allow_never": allow_never(request),
        "rendered_at": at.isoformat(),
        "done": done_message(request),
    }


async def account_page(request: web.Request) -> web.Response:
    account_id = path_uuid(request, "accountId", "system account")
    await read_consistently(request, Right.ACCOUNTS_READ)
    return page(request, "account.html", await account_context(request, account_id))


async def account_page_with_secret(
    request: web.Request, account_id: str, issued: IssuedToken
) -> web.Response:
    """The account page with the one-time panel of a secret just issued or rotated. It is the answer
    to the POST itself (never stored, never redirected to); the browser's address becomes the
    account page's, so a reload shows the page without it."""
    context = await account_context(request, account_id)
    context["issued"] = {"name": issued.token.name, "secret": issued.secret, "id": issued.token.token_id}
    response = page(request, "account.html", context)
    response.headers["HX-Push-Url"] = account_path(account_id)
    return response


async def update_account(request: web.Request) -> web.Response:
    admit(request, UpdateAccount)
    account_id = path_uuid(request, "accountId", "system account")
    body = decoded(
        {"name": form_text(request, "name") or "", "description": form_text(request, "description") or ""},
        UpdateSystemAccount,
    )
    assert isinstance(body.name, str) and isinstance(body.description, str)
    await act(request, UpdateAccount(account_id=account_id, name=body.name, description=body.description))
    return redirect(account_path(account_id, "updated"))


async def set_enabled(request: web.Request) -> web.Response:
    admit(request, UpdateAccount)
    account_id = path_uuid(request, "accountId", "system account")
    wanted = form_text(request, "enabled")
    if wanted not in ("true", "false"):
        raise invalid("enabled", "must be true or false")
    await act(request, UpdateAccount(account_id=account_id, enabled=wanted == "true"))
    return redirect(account_path(account_id, "enabled" if wanted == "true" else "disabled"))


def typed_confirmation(request: web.Request, expected: str) -> None:
    if form_text(request, "confirm") != expected:
        reason = "must repeat the name exactly, to confirm the deletion"
        raise invalid("confirm", reason, "invalid")


async def delete_account(request: web.Request) -> web.Response:
    admit(request, DeleteAccount)
    account_id = path_uuid(request, "accountId", "system account")
    row = await account_queries.get_account(read_pool(request), account_id)
    if row is None:
        raise NotFound("The requested system account was not found")
    typed_confirmation(request, row["name"])
    await act(request, DeleteAccount(account_id=account_id))
    return redirect("/console/accounts?done=deleted")


def role_body(request: web.Request) -> AssignRole:
    """``role`` is ``<entity type name>/<role name>`` as the catalogue names them."""
    entity_type, _, role_name = (form_text(request, "role") or "").partition("/")
    return decoded(
        {
            "role_name": role_name,
            "entity_type_name": entity_type,
            "entity_id": (form_text(request, "entity_id") or "").strip(),
            "entity_region": form_text(request, "entity_region") or "*",
        },
        AssignRole,
    )


async def assign_role(request: web.Request) -> web.Response:
    admit(request, role_holders.AssignRole)
    account_id = path_uuid(request, "accountId", "system account")
    body = role_body(request)
    await act(
        request,
        role_holders.AssignRole(
            holder=role_holders.AccountHolder(account_id=account_id),
            role_name=body.role_name,
            entity_id=str(body.entity_id),
            entity_type_name=body.entity_type_name,
            entity_region=body.entity_region,
        ),
    )
    return redirect(account_path(account_id, "role-assigned"))


async def unassign_role(request: web.Request) -> web.Response:
    admit(request, role_holders.UnassignRole)
    account_id = path_uuid(request, "accountId", "system account")
    assignment = path_uuid(request, "roleId", "assigned role")
    holder = role_holders.AccountHolder(account_id=account_id)
    await act(request, role_holders.UnassignRole(holder=holder, assignment_id=assignment))
    return redirect(account_path(account_id, "role-unassigned"))


def form_uuid(request: web.Request, field: str, what: str) -> str:
    """An id chosen in a form's picker: anything else is a 400 naming the field."""
    try:
        return str(uuid.UUID(form_text(request, field) or ""))
    except ValueError:
        reason = f"must be one of the {what}"
        raise invalid(field, reason, "is_uuid") from None


async def join_team(request: web.Request) -> web.Response:
    admit(request, AddMember)
    account_id = path_uuid(request, "accountId", "system account")
    await act(request, AddMember(team_id=form_uuid(request, "team_id", "teams"), account_id=account_id))
    return redirect(account_path(account_id, "team-added"))


async def leave_team(request: web.Request) -> web.Response:
    admit(request, RemoveMember)
    account_id = path_uuid(request, "accountId", "system account")
    team_id = path_uuid(request, "teamId", "team")
    await act(request, RemoveMember(team_id=team_id, account_id=account_id))
    return redirect(account_path(account_id, "team-removed"))


def add_routes(app: web.Application) -> None:
    base = "/accounts/{accountId}"
    app.router.add_get("/accounts", list_accounts)
    app.router.add_post("/accounts", create_account)
    app.router.add_get(base, account_page)
    app.router.add_post(base + "/edit", update_account)
    app.router.add_post(base + "/enabled", set_enabled)
    app.router.add_post(base + "/delete", delete_account)
    app.router.add_post(base + "/roles", assign_role)
    app.router.add_post(base + "/roles/{roleId}/unassign", unassign_role)
    app.router.add_post(base + "/teams", join_team)
    app.router.add_post(base + "/teams/{teamId}/remove", leave_team)
