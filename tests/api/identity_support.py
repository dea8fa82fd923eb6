"""Helpers shared by the end-to-end tests of teams, memberships, role assignments and the role
catalogue: making accounts, teams and tokens over HTTP, granting Identity roles, checking problem
bodies, and proving that a rejected request wrote nothing to the event log."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from services.bootstrap_admin import bootstrap
from services.composition import Runtime
from tests.api_fixture import ApiClient, Reply, unique

PROBLEM_CONTENT_TYPE = "application/problem+json"
ORGANIZATION_PATH = "/v3/organizations/me"

# token.used / token.extended are appended in the background by the usage recorder whenever a
# token is presented, so they are not "writes" of the request under test.
_USAGE_EVENT_TYPES = ("token.used", "token.extended")
_LOG_HEAD = "SELECT coalesce(max(global_position), 0) FROM events WHERE type <> ALL($1::text[])"


def assert_problem(reply: Reply, status: int, field: str | None = None, rule: str | None = None) -> None:
    """``reply`` is a Konnect problem with ``status``; for a 400, ``invalid_parameters`` names ``field``
    (with ``rule`` when given) and the detail mentions it."""
    assert reply.status == status, reply.body
    assert reply.content_type == PROBLEM_CONTENT_TYPE, reply.headers
    body = reply.body
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["instance"], str) and body["instance"]
    if status == 400:
        parameters = body["invalid_parameters"]
        assert parameters, body
        for parameter in parameters:
            assert isinstance(parameter["field"], str) and isinstance(parameter["reason"], str)
    if field is not None:
        named = {p["field"]: p for p in body["invalid_parameters"]}
        assert field in named, body
        if rule is not None:
            assert named[field].get("rule") == rule, body
        assert field in body["detail"], body


async def log_head(runtime: Runtime) -> int:
    """The position of the last event written by a command (usage events excluded)."""
    head: int = await runtime.pool.fetchval(_LOG_HEAD, list(_USAGE_EVENT_TYPES))
    return head


@asynccontextmanager
async def nothing_written(runtime: Runtime) -> AsyncIterator[None]:
    """Asserts that the requests made inside the block appended no command event."""
    before = await log_head(runtime)
    yield
    assert await log_head(runtime) == before


async def create_account(api: ApiClient, prefix: str = "account", token: str | None = None) -> dict[str, Any]:
    reply = await api.post(
        "/v3/system-accounts", {"name": unique(prefix), "description": "test account"}, token=token
    )
    assert reply.status == 201, reply.body
    account: dict[str, Any] = reply.body
    return account


async def create_team(api: ApiClient, prefix: str = "team", **fields: Any) -> dict[str, Any]:
    reply = await api.post("/v3/teams", {"name": unique(prefix), **fields})
    assert reply.status == 201, reply.body
    team: dict[str, Any] = reply.body
    return team


async def issue_token(api: ApiClient, account_id: str, scopes: list[str] | None = None) -> str:
    """A new token secret for ``account_id``, issued by the bootstrap admin, valid for 30 days."""
    expires_at = (datetime.now(UTC) + timedelta(days=30)).isoformat().replace("+00:00", "Z")
    body: dict[str, Any] = {"name": unique("token"), "expires_at": expires_at}
    if scopes is not None:
        body["scopes"] = scopes
    reply = await api.post(f"/v3/system-accounts/{account_id}/access-tokens", body)
    assert reply.status == 201, reply.body
    secret: str = reply.body["token"]
    return secret


async def organization_id(api: ApiClient) -> str:
    reply = await api.get(ORGANIZATION_PATH)
    assert reply.status == 200, reply.body
    org_id: str = reply.body["id"]
    return org_id


def role(role_name: str, entity_type_name: str, entity_id: str, entity_region: str = "*") -> dict[str, str]:
    """An AssignRole request body."""
    return {
        "role_name": role_name,
        "entity_type_name": entity_type_name,
        "entity_id": entity_id,
        "entity_region": entity_region,
    }


async def grant_identity_role(
    api: ApiClient, holder_path: str, role_name: str, token: str | None = None
) -> dict[str, Any]:
    """Assigns the Identity role ``role_name`` on the organization to ``holder_path``
    (``/v3/system-accounts/<id>`` or ``/v3/teams/<id>``); returns the assigned role."""
    body = role(role_name, "Identity", await organization_id(api))
    reply = await api.post(f"{holder_path}/assigned-roles", body, token=token)
    assert reply.status == 201, reply.body
    assigned: dict[str, Any] = reply.body
    return assigned


async def account_with_roles(
    api: ApiClient, *role_names: str, scopes: list[str] | None = None
) -> tuple[str, str]:
    """A new account holding the given Identity roles directly, and a token for it: (id, secret)."""
    account = await create_account(api, "holder")
    for role_name in role_names:
        await grant_identity_role(api, f"/v3/system-accounts/{account['id']}", role_name)
    return account["id"], await issue_token(api, account["id"], scopes)


async def managed_account(api: ApiClient, runtime: Runtime) -> dict[str, Any]:
    """A new konnect-managed account, made the only way there is: ``tokenledger bootstrap``."""
    name = unique("managed")
    await bootstrap(runtime.deps, runtime.dispatcher, name, runtime.clock())
    reply = await api.get(f"/v3/system-accounts?filter[name][eq]={name}")
    assert reply.status == 200, reply.body
    (account,) = reply.body["data"]
    assert account["konnect_managed"] is True
    found: dict[str, Any] = account
    return found
