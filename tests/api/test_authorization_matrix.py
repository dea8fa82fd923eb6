"""Who may call what: each kind of caller on a read and on a write endpoint, and the rules that keep
rights from growing (no granting what you do not hold; a token never widens its account's rights)."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from services.composition import Runtime
from tests.api.helpers import account_with_token, assert_problem, in_days, issue_token, new_account
from tests.api_fixture import ApiClient, unique

Caller = Callable[[ApiClient, Runtime], Awaitable[str | None]]


async def _admin(api: ApiClient, _runtime: Runtime) -> str:
    return api.token


async def _viewer(api: ApiClient, runtime: Runtime) -> str:
    return (await account_with_token(api, runtime, "Viewer"))[1]


async def _auditor(api: ApiClient, runtime: Runtime) -> str:
    return (await account_with_token(api, runtime, "Auditor"))[1]


async def _read_scoped_admin(api: ApiClient, runtime: Runtime) -> str:
    return (await account_with_token(api, runtime, "Admin", scopes=["identity:read"]))[1]


async def _no_role(api: ApiClient, runtime: Runtime) -> str:
    return (await account_with_token(api, runtime, None))[1]


async def _disabled(api: ApiClient, runtime: Runtime) -> str:
    account, secret = await account_with_token(api, runtime, "Admin")
    assert (await api.patch(f"/v3/system-accounts/{account['id']}", {"enabled": False})).status == 200
    return secret


async def _revoked(api: ApiClient, runtime: Runtime) -> str:
    account, secret = await account_with_token(api, runtime, "Admin")
    tokens = (await api.get(f"/v3/system-accounts/{account['id']}/access-tokens")).body["data"]
    assert (
        await api.patch(f"/v3/system-accounts/{account['id']}/access-tokens/{tokens[0]['id']}/revoke")
    ).status == 200
    return secret


async def _expired(api: ApiClient, runtime: Runtime) -> str:
    secret = (await account_with_token(api, runtime, "Admin", expires_at=in_days(1 / 86400)))[1]
    await asyncio.sleep(1.1)
    return secret


async def _rotated_out(api: ApiClient, runtime: Runtime) -> str:
    account, secret = await account_with_token(api, runtime, "Admin")
    tokens = (await api.get(f"/v3/system-accounts/{account['id']}/access-tokens")).body["data"]
    rotate = f"/v3/system-accounts/{account['id']}/access-tokens/{tokens[0]['id']}/rotate"
    assert (await api.post(rotate, {})).status == 200
    return secret


async def _garbage(_api: ApiClient, _runtime: Runtime) -> str:
    return "spat_" + "x" * 50


async def _none(_api: ApiClient, _runtime: Runtime) -> None:
    return None


# caller -> (status of a read, status of a write)
MATRIX: dict[str, tuple[Caller, int, int]] = {
    "admin": (_admin, 200, 201),
    "viewer": (_viewer, 200, 403),
    "auditor": (_auditor, 403, 403),
    "admin token scoped to identity:read": (_read_scoped_admin, 200, 403),
    "account without roles": (_no_role, 403, 403),
    "disabled account": (_disabled, 401, 401),
    "revoked token": (_revoked, 401, 401),
    "expired token": (_expired, 401, 401),
    "rotated-out secret": (_rotated_out, 401, 401),
    "garbage token": (_garbage, 401, 401),
    "no token": (_none, 401, 401),
}


@pytest.mark.parametrize("caller", list(MATRIX))
async def test_read_and_write(api: ApiClient, api_runtime: Runtime, caller: str) -> None:
    make, read_status, write_status = MATRIX[caller]
    secret = await make(api, api_runtime)
    token = "" if secret is None else secret
    read = await api.get("/v3/system-accounts", token=token)
    write = await api.post("/v3/system-accounts", {"name": unique("matrix"), "description": ""}, token=token)
    assert (read.status, write.status) == (read_status, write_status), (read.body, write.body)
    for reply in (read, write):
        if reply.status >= 400:
            assert_problem(reply, reply.status)


async def test_every_rejection_looks_the_same(api: ApiClient, api_runtime: Runtime) -> None:
    bodies = []
    for make in (_revoked, _garbage, _disabled, _rotated_out):
        reply = await api.get("/v3/system-accounts", token=await make(api, api_runtime))
        bodies.append({k: v for k, v in reply.body.items() if k != "instance"})
    assert all(body == bodies[0] for body in bodies)


async def test_malformed_authorization_header_is_401(api: ApiClient) -> None:
    for header in ("Basic abc", "Bearer", "Bearer    ", "spat_x"):
        reply = await api.get("/v3/system-accounts", token="", headers={"Authorization": header})
        assert_problem(reply, 401)


async def test_nobody_grants_a_role_they_do_not_hold(api: ApiClient, api_runtime: Runtime) -> None:
    _, viewer = await account_with_token(api, api_runtime, "Viewer")
    target = await new_account(api)
    grant: dict[str, Any] = {
        "role_name": "Admin",
        "entity_id": api_runtime.organization.organization_id,
        "entity_type_name": "Identity",
        "entity_region": "*",
    }
    reply = await api.post(f"/v3/system-accounts/{target['id']}/assigned-roles", grant, token=viewer)
    assert_problem(reply, 403)


async def test_an_admin_without_auditor_cannot_grant_auditor(api: ApiClient, api_runtime: Runtime) -> None:
    account, admin = await account_with_token(api, api_runtime, "Admin")
    target = await new_account(api)
    grant = {
        "role_name": "Auditor",
        "entity_id": api_runtime.organization.organization_id,
        "entity_type_name": "Identity",
        "entity_region": "*",
    }
    reply = await api.post(f"/v3/system-accounts/{target['id']}/assigned-roles", grant, token=admin)
    assert_problem(reply, 403)
    own = await api.post(f"/v3/system-accounts/{account['id']}/assigned-roles", grant, token=admin)
    assert_problem(own, 403)


async def test_a_token_cannot_widen_its_own_rights(api: ApiClient, api_runtime: Runtime) -> None:
    account, scoped = await account_with_token(
        api, api_runtime, "Admin", scopes=["identity:read", "identity:write"]
    )
    wider = await api.post(
        f"/v3/system-accounts/{account['id']}/access-tokens",
        {"name": unique("wider"), "expires_at": in_days(1)},
        token=scoped,
    )
    assert_problem(wider, 403)
    same = await issue_token(api, account["id"], scopes=["identity:read"])
    assert same["scopes"] == ["identity:read"]
