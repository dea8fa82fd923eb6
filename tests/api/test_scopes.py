"""Each operation needs exactly the right its OpenAPI security requirement names
(``parts/operation-scopes.yaml``, docs/scopes.md), over HTTP: a token of an Admin scoped to that right
alone gets past authorisation, and one scoped to every other right is refused with a 403 saying its
scopes exclude it. Requests name ids that do not exist and bodies that are empty, so that what gets
past authorisation is then refused (404, 400) and nothing is written."""

import uuid
from typing import Any

from services.api.openapi.document import SECURITY_SCHEME, build_document, operations
from services.authorization import Right
from services.composition import Runtime
from tests.api.helpers import account_with_token, assert_problem
from tests.api.identity_support import nothing_written
from tests.api_fixture import ApiClient

AS_OF = "2025-01-01T00:00:00Z"


def _documented() -> list[tuple[str, str, list[str]]]:
    """(path, method, rights) of every authenticated operation of the served document."""
    return [
        (path, method, operation["security"][0][SECURITY_SCHEME])
        for path, method, operation, _shared in operations(build_document())
        if operation.get("security") != []
    ]


def _concrete(path: str) -> str:
    """The path with every parameter an id nothing has."""
    for name in ("accountId", "tokenId", "teamId", "roleId", "credentialId"):
        path = path.replace("{" + name + "}", str(uuid.uuid4()))
    return "/v3" + path


async def _call(api: ApiClient, method: str, path: str, token: str) -> Any:
    body = {} if method in ("post", "patch") else None
    return await api.request(method.upper(), path, body, token=token)


def test_every_right_is_needed_by_some_operation() -> None:
    needed = {right for _path, _method, rights in _documented() for right in rights}
    # metrics:read guards GET /metrics, which is served outside /v3 (tests/api/test_metrics.py)
    assert needed | {Right.METRICS.value} == {right.value for right in Right}


async def test_each_operation_needs_exactly_the_right_it_documents(
    api: ApiClient, api_runtime: Runtime
) -> None:
    exactly: dict[str, str] = {}
    all_but: dict[str, str] = {}
    for right in Right:
        others = [other.value for other in Right if other != right]
        exactly[right.value] = (await account_with_token(api, api_runtime, "Admin", scopes=[right.value]))[1]
        all_but[right.value] = (await account_with_token(api, api_runtime, "Admin", scopes=others))[1]
    no_scope = (await account_with_token(api, api_runtime, "Admin", scopes=[]))[1]
    async with nothing_written(api_runtime):
        for path, method, rights in _documented():
            concrete = _concrete(path)
            if not rights:
                reply = await _call(api, method, concrete, no_scope)
                assert reply.status == 200, (method, path, reply.body)
                continue
            (right,) = rights
            admitted = await _call(api, method, concrete, exactly[right])
            assert admitted.status != 403, (method, path, right, admitted.body)
            assert admitted.status < 500, (method, path, admitted.body)
            refused = await _call(api, method, concrete, all_but[right])
            assert_problem(refused, 403)
            assert f"needs the {right} right" in refused.body["detail"], (method, path, refused.body)
            assert "scopes exclude it" in refused.body["detail"]


async def test_a_past_state_needs_audit_read_not_the_familys_read(
    api: ApiClient, api_runtime: Runtime
) -> None:
    """``as_of`` on an account's GET operations reads the log's history: the auditors' right."""
    _, auditor = await account_with_token(api, api_runtime, "Admin", scopes=["audit:read"])
    _, reader = await account_with_token(api, api_runtime, "Admin", scopes=["identity:read"])
    account = str(uuid.uuid4())
    for suffix in ("", "/access-tokens", f"/access-tokens/{uuid.uuid4()}", "/assigned-roles", "/teams"):
        path = f"/v3/system-accounts/{account}{suffix}?as_of={AS_OF}"
        assert (await api.get(path, token=auditor)).status == 404, path
        refused = await api.get(path, token=reader)
        assert_problem(refused, 403)
        assert "audit:read" in refused.body["detail"]


async def test_the_aliases_admit_what_their_rights_do(api: ApiClient, api_runtime: Runtime) -> None:
    _, reader = await account_with_token(api, api_runtime, "Admin", scopes=["identity:read"])
    _, writer = await account_with_token(api, api_runtime, "Admin", scopes=["identity:write"])
    for path in ("/v3/system-accounts", "/v3/teams"):
        assert (await api.get(path, token=reader)).status == 200
        assert_problem(await api.get(path, token=writer), 403)
    async with nothing_written(api_runtime):
        for path in ("/v3/system-accounts", "/v3/teams"):
            assert_problem(await api.post(path, {}, token=writer), 400)
            assert_problem(await api.post(path, {}, token=reader), 403)
