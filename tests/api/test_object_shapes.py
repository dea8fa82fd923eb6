"""Every Konnect object over real HTTP carries every field, null when it has no value, in create,
get and list answers alike: access tokens (Konnect documents ``expires_at`` and ``last_used_at`` in
its create response), system accounts, teams and assigned roles. Each body is also checked against
our served OpenAPI document, which declares which fields may be null."""

import functools
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import jsonschema  # type: ignore[import-untyped]
import msgspec
import pytest
from aiohttp.test_utils import TestServer

from services.api import state
from services.api.app import create_app
from services.api.openapi.document import build_document
from services.composition import Runtime
from services.dispatch import Dispatcher
from services.policy import TokenPolicy
from tests.api.helpers import grant_identity_role, in_days, issue_token, new_account
from tests.api_fixture import ApiClient, unique

KONNECT_TOKEN_FIELDS = {"id", "name", "created_at", "updated_at", "expires_at", "last_used_at"}
TOKEN_EXTENSIONS = {
    "state",
    "revoked_at",
    "revoke_reason",
    "scopes",
    "auto_extend_seconds",
    "max_expires_at",
    "federated_credential_id",
}
TOKEN_FIELDS = KONNECT_TOKEN_FIELDS | TOKEN_EXTENSIONS
ACCOUNT_FIELDS = {
    "id",
    "name",
    "description",
    "created_at",
    "updated_at",
    "konnect_managed",
    "enabled",
    "rotation_period_seconds",
    "expires_at",
}
TEAM_FIELDS = {"id", "name", "description", "system_team", "labels", "created_at", "updated_at"}
ASSIGNED_ROLE_FIELDS = {"id", "role_name", "entity_id", "entity_type_name", "entity_region"}


@functools.cache
def _components() -> dict[str, Any]:
    components: dict[str, Any] = build_document()["components"]
    return components


def assert_conforms(body: Any, *, schema: str | None = None, response: str | None = None) -> None:
    """``body`` is valid under the served document's ``components/schemas/<schema>``, or the JSON
    schema of ``components/responses/<response>``."""
    if schema is not None:
        ref = f"#/components/schemas/{schema}"
    else:
        ref = f"#/components/responses/{response}/content/application~1json/schema"
    jsonschema.Draft202012Validator({"$ref": ref, "components": _components()}).validate(body)


@pytest.fixture
async def never_expiring_api(api_runtime: Runtime, api: ApiClient) -> AsyncIterator[ApiClient]:
    """A second node on the same runtime whose policy allows tokens that never expire
    (``TOKENLEDGER_ALLOW_NON_EXPIRING_TOKENS=true``)."""
    policy = TokenPolicy(max_lifetime=timedelta(days=365), allow_non_expiring=True)
    deps = msgspec.structs.replace(api_runtime.deps, token_policy=policy)
    dispatcher = Dispatcher(deps, claims=api_runtime.idempotency)
    runtime = msgspec.structs.replace(api_runtime, deps=deps, dispatcher=dispatcher)
    app = create_app()
    state.bind(app, runtime)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield ApiClient(session, str(server.make_url("")).rstrip("/"), api.token)
    finally:
        await server.close()


async def _token_everywhere(api: ApiClient, account_id: str, token_id: str) -> list[dict[str, Any]]:
    """The token as get and list answer it."""
    path = f"/v3/system-accounts/{account_id}/access-tokens"
    fetched = await api.get(f"{path}/{token_id}")
    assert fetched.status == 200, fetched.body
    listed = await api.get(path)
    assert listed.status == 200, listed.body
    (item,) = [t for t in listed.body["data"] if t["id"] == token_id]
    return [fetched.body, item]


async def test_a_new_token_sends_last_used_at_null_in_create_get_and_list(api: ApiClient) -> None:
    account = await new_account(api)
    issued = await issue_token(api, account["id"])
    assert set(issued) == TOKEN_FIELDS | {"token"}
    assert issued["last_used_at"] is None
    assert issued["revoked_at"] is None and issued["revoke_reason"] is None and issued["scopes"] is None
    assert issued["auto_extend_seconds"] is None and issued["max_expires_at"] is None
    assert issued["federated_credential_id"] is None
    assert_conforms(issued, response="SystemAccountAccessTokenCreated")
    for shown in await _token_everywhere(api, account["id"], issued["id"]):
        assert set(shown) == TOKEN_FIELDS
        assert shown == {k: v for k, v in issued.items() if k != "token"}
        assert_conforms(shown, schema="SystemAccountAccessToken")


async def test_a_never_expiring_token_sends_expires_at_null(never_expiring_api: ApiClient) -> None:
    api = never_expiring_api
    account = await new_account(api)
    reply = await api.post(
        f"/v3/system-accounts/{account['id']}/access-tokens", {"name": unique("forever"), "expires_at": None}
    )
    assert reply.status == 201, reply.body
    assert set(reply.body) == TOKEN_FIELDS | {"token"}
    assert reply.body["expires_at"] is None and reply.body["last_used_at"] is None
    assert_conforms(reply.body, response="SystemAccountAccessTokenCreated")
    for shown in await _token_everywhere(api, account["id"], reply.body["id"]):
        assert set(shown) == TOKEN_FIELDS
        assert shown["expires_at"] is None and shown["last_used_at"] is None
        assert_conforms(shown, schema="SystemAccountAccessToken")


async def test_a_used_and_revoked_token_fills_its_fields(api: ApiClient, api_runtime: Runtime) -> None:
    account = await new_account(api)
    await grant_identity_role(api, api_runtime, account["id"], "Viewer")
    issued = await issue_token(api, account["id"], scopes=["identity:read"], expires_at=in_days(3))
    await api.get("/v3/roles", token=issued["token"])
    path = f"/v3/system-accounts/{account['id']}/access-tokens/{issued['id']}"
    revoked = await api.patch(f"{path}/revoke")
    assert revoked.status == 200, revoked.body
    assert set(revoked.body) == TOKEN_FIELDS
    assert revoked.body["revoked_at"] is not None and revoked.body["scopes"] == ["identity:read"]
    assert_conforms(revoked.body, schema="SystemAccountAccessToken")


async def test_accounts_teams_and_assigned_roles_send_every_field(api: ApiClient) -> None:
    account = await new_account(api)
    assert set(account) == ACCOUNT_FIELDS and account["rotation_period_seconds"] is None
    assert account["expires_at"] is None
    team_reply = await api.post("/v3/teams", {"name": unique("team")})
    assert team_reply.status == 201, team_reply.body
    team = team_reply.body
    assert set(team) == TEAM_FIELDS and team["description"] is None
    role = {
        "role_name": "Viewer",
        "entity_id": str(uuid.uuid4()),
        "entity_type_name": "Control Planes",
        "entity_region": "us",
    }
    assigned = await api.post(f"/v3/system-accounts/{account['id']}/assigned-roles", role)
    assert assigned.status == 201, assigned.body
    assert set(assigned.body) == ASSIGNED_ROLE_FIELDS
    joined = await api.post(f"/v3/teams/{team['id']}/system-accounts", {"id": account["id"]})
    assert joined.status == 201, joined.body
    role_path = f"/v3/system-accounts/{account['id']}/assigned-roles/{assigned.body['id']}"
    for path, fields, schema in [
        (f"/v3/system-accounts/{account['id']}", ACCOUNT_FIELDS, "SystemAccount"),
        (f"/v3/teams/{team['id']}", TEAM_FIELDS, "Team"),
        (role_path, ASSIGNED_ROLE_FIELDS, "AssignedRole"),
    ]:
        reply = await api.get(path)
        assert reply.status == 200, reply.body
        assert set(reply.body) == fields, path
        assert_conforms(reply.body, schema=schema)
    for path, fields in [
        ("/v3/system-accounts?page[size]=100", ACCOUNT_FIELDS),
        ("/v3/teams?page[size]=100", TEAM_FIELDS),
        (f"/v3/system-accounts/{account['id']}/assigned-roles", ASSIGNED_ROLE_FIELDS),
        (f"/v3/system-accounts/{account['id']}/teams", TEAM_FIELDS),
        (f"/v3/teams/{team['id']}/system-accounts", ACCOUNT_FIELDS),
    ]:
        reply = await api.get(path)
        assert reply.status == 200, reply.body
        assert reply.body["data"], path
        assert all(set(item) == fields for item in reply.body["data"]), path
