"""Every error status a Konnect operation declares (400, 401, 403, 404, 409) is what the service
answers in that case, with Konnect's problem body, on every in-scope operation; and 415 for a body
of another media type on every operation that takes one (Konnect lists no 415, our document does).
Typed Konnect clients (Kong's Go SDK among them) choose their error type by status, so each case
here is one a client can meet: no token, a token without the right, an id that does not exist, a
name or an assignment that already exists, a body that is not JSON or breaks the schema.

Each answer is checked against the response our served document declares for that status on that
operation, and against Konnect's own where Konnect declares it. ``NOT_PRODUCED`` lists the statuses
Konnect declares that no request can provoke here, and why."""

import functools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from services.api.openapi.convert import to_openapi_31
from services.api.openapi.document import build_document, operations
from services.api.openapi.reference import in_scope_reference
from services.composition import Runtime
from tests.api.helpers import account_with_token, in_days, issue_token, new_account
from tests.api.identity_support import PROBLEM_CONTENT_TYPE, nothing_written
from tests.api_fixture import ApiClient, Reply, unique

KONNECT_STATUSES = ("400", "401", "403", "404", "409")
NOT_PRODUCED = {
    ("get", "/teams", "404"): "a list of every team: there is no resource that could be missing",
    ("get", "/system-accounts/{accountId}/assigned-roles/{roleId}", "400"): (
        "no query parameter nor body, and the System Accounts family types its ids as plain strings, "
        "so a malformed id is a 404"
    ),
}
PUBLIC_TO_CALLERS = {("get", "/roles"), ("get", "/organizations/me")}
"""Read by any authenticated caller (Konnect documents no 403 on them)."""
ROLE = {"role_name": "Viewer", "entity_type_name": "Control Planes", "entity_region": "us"}


@dataclass(frozen=True)
class World:
    """Resources that exist: an account with two tokens and a role, in a team with a role; another
    account; a token whose account holds no role."""

    account: dict[str, Any]
    other_account: dict[str, Any]
    token: dict[str, Any]
    other_token: dict[str, Any]
    account_role: dict[str, Any]
    team: dict[str, Any]
    team_role: dict[str, Any]
    nobody: str


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    body: Any = None
    raw: bytes | None = None
    content_type: str | None = None
    token: str | None = None
    query: str = ""


@pytest.fixture(scope="module")
async def world(api: ApiClient, api_runtime: Runtime) -> World:
    account = await new_account(api)
    other_account = await new_account(api)
    token = await issue_token(api, account["id"])
    other_token = await issue_token(api, account["id"])
    entity = {**ROLE, "entity_id": str(uuid.uuid4())}
    account_role = await api.post(f"/v3/system-accounts/{account['id']}/assigned-roles", entity)
    team = await api.post("/v3/teams", {"name": unique("team")})
    team_role = await api.post(f"/v3/teams/{team.body['id']}/assigned-roles", entity)
    member = await api.post(f"/v3/teams/{team.body['id']}/system-accounts", {"id": account["id"]})
    assert (account_role.status, team.status, team_role.status, member.status) == (201, 201, 201, 201)
    _, nobody = await account_with_token(api, api_runtime, None)
    return World(
        account, other_account, token, other_token, account_role.body, team.body, team_role.body, nobody
    )


def _konnect_operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, method, operation, _shared in operations(in_scope_reference()):
        yield method, path, operation


OPERATIONS = [(method, path) for method, path, _ in _konnect_operations()]
WITH_BODY = [(method, path) for method, path, op in _konnect_operations() if "requestBody" in op]


def _ids(world: World, path: str, *, unknown: str | None = None) -> dict[str, str]:
    ids = {
        "accountId": world.account["id"],
        "tokenId": world.token["id"],
        "teamId": world.team["id"],
        "roleId": world.team_role["id"] if path.startswith("/teams") else world.account_role["id"],
    }
    if unknown is not None:
        ids[unknown] = str(uuid.uuid4())
    return ids


def _path(path: str, ids: dict[str, str]) -> str:
    for name, value in ids.items():
        path = path.replace("{" + name + "}", value)
    return "/v3" + path


def valid_body(world: World, method: str, path: str) -> Any:
    """A body the operation accepts (for the cases that must fail for another reason)."""
    match method, path:
        case "post", "/system-accounts":
            return {"name": unique("account"), "description": "d"}
        case "post", "/teams":
            return {"name": unique("team")}
        case "patch", _ if path.endswith("{tokenId}"):
            return {"name": unique("token")}
        case "patch", _:
            return {"description": "changed"}
        case "post", "/system-accounts/{accountId}/access-tokens":
            return {"name": unique("token"), "expires_at": in_days(3)}
        case "post", _ if path.endswith("/assigned-roles"):
            return {**ROLE, "entity_id": str(uuid.uuid4())}
        case "post", "/teams/{teamId}/system-accounts":
            return {"id": world.other_account["id"]}
    return None


def _unknown_id(path: str) -> str | None:
    """The path parameter to replace by an id that does not exist (the innermost)."""
    names = [name for name in ("accountId", "teamId", "tokenId", "roleId") if "{" + name + "}" in path]
    if not names:
        return None
    if path == "/teams/{teamId}/system-accounts/{accountId}":
        return "accountId"
    return max(names, key=lambda name: path.index("{" + name + "}"))


def case_for(world: World, method: str, path: str, status: str) -> Case | None:
    body = valid_body(world, method, path)
    here = _path(path, _ids(world, path))
    match status:
        case "401":
            return Case(method, here, body, token="")
        case "403":
            return (
                None if (method, path) in PUBLIC_TO_CALLERS else Case(method, here, body, token=world.nobody)
            )
        case "404":
            unknown = _unknown_id(path)
            if unknown is None:
                return None
            if (method, path) == ("post", "/teams/{teamId}/system-accounts"):
                return Case(method, here, {"id": str(uuid.uuid4())})
            return Case(method, _path(path, _ids(world, path, unknown=unknown)), body)
        case "409":
            return _conflict(world, method, path)
        case "400":
            if body is not None:
                return Case(method, here, {**body, "no_such_field": 1})
            if method == "get" and "{" not in path.rsplit("/", 1)[-1] and path != "/organizations/me":
                return Case(method, here, query="?page[size]=0" if path != "/roles" else "?page[size]=10")
            if "{teamId}" in path and "/system-accounts" not in path:  # the Teams family: format uuid
                return Case(method, _path(path, {**_ids(world, path), "teamId": "not-a-uuid"}))
    return None


def _conflict(world: World, method: str, path: str) -> Case | None:
    account, team = world.account, world.team
    same_role = {
        k: world.account_role[k] for k in ("role_name", "entity_id", "entity_type_name", "entity_region")
    }
    match method, path:
        case "post", "/system-accounts":
            return Case(method, "/v3/system-accounts", {"name": account["name"], "description": "d"})
        case "patch", "/system-accounts/{accountId}":
            return Case(method, f"/v3/system-accounts/{world.other_account['id']}", {"name": account["name"]})
        case "post", "/system-accounts/{accountId}/access-tokens":
            body = {"name": world.token["name"], "expires_at": in_days(3)}
            return Case(method, f"/v3/system-accounts/{account['id']}/access-tokens", body)
        case "patch", "/system-accounts/{accountId}/access-tokens/{tokenId}":
            other = f"/v3/system-accounts/{account['id']}/access-tokens/{world.other_token['id']}"
            return Case(method, other, {"name": world.token["name"]})
        case "post", "/system-accounts/{accountId}/assigned-roles":
            return Case(method, f"/v3/system-accounts/{account['id']}/assigned-roles", same_role)
        case "post", "/teams/{teamId}/assigned-roles":
            return Case(method, f"/v3/teams/{team['id']}/assigned-roles", same_role)
        case "post", "/teams/{teamId}/system-accounts":
            return Case(method, f"/v3/teams/{team['id']}/system-accounts", {"id": account["id"]})
    return None


@functools.cache
def _documents() -> tuple[dict[str, Any], dict[str, Any]]:
    """(our served document, Konnect's reference in OpenAPI 3.1): both validated as JSON Schema 2020-12."""
    return build_document(), to_openapi_31(in_scope_reference())


def _problem_schema(document: dict[str, Any], method: str, path: str, status: str) -> dict[str, Any] | None:
    response = document["paths"][path][method]["responses"].get(status)
    if response is None:
        return None
    while "$ref" in response:
        response = document["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema: dict[str, Any] = response["content"][PROBLEM_CONTENT_TYPE]["schema"]
    return {**schema, "components": document["components"]}


def assert_konnect_problem(reply: Reply, method: str, path: str, status: str) -> None:
    assert reply.status == int(status), (method, path, reply.body)
    assert reply.content_type == PROBLEM_CONTENT_TYPE, (method, path, reply.headers)
    assert reply.body["status"] == int(status)
    assert {"status", "title", "instance", "detail"} <= set(reply.body)
    ours, konnect = _documents()
    declared = _problem_schema(ours, method, path, status)
    assert declared is not None, f"our document declares no {status} on {method.upper()} {path}"
    jsonschema.Draft202012Validator(declared).validate(reply.body)
    reference = _problem_schema(konnect, method, path, status)
    if reference is not None:
        jsonschema.Draft202012Validator(reference).validate(reply.body)


async def send(api: ApiClient, case: Case) -> Reply:
    headers = {"Content-Type": case.content_type} if case.content_type else None
    return await api.request(
        case.method.upper(),
        case.path + case.query,
        case.body,
        token=case.token,
        headers=headers,
        raw=case.raw,
    )


_PLACEHOLDER = {"id": "id", "name": "name", **ROLE, "entity_id": "entity"}
PLACEHOLDER_WORLD = World(*([_PLACEHOLDER] * 7), nobody="token")  # type: ignore[arg-type]
"""Whether an operation has a case for a status does not depend on the ids the cases name."""
CASES = [
    (method, path, status)
    for method, path in OPERATIONS
    for status in KONNECT_STATUSES
    if case_for(PLACEHOLDER_WORLD, method, path, status) is not None
]


def test_every_status_konnect_declares_has_a_case_or_a_reason() -> None:
    """No declared status is silently left out: each is exercised below or explained in NOT_PRODUCED."""
    declared = {(method, path): operation for method, path, operation in _konnect_operations()}
    missing = [
        (method, path, status)
        for (method, path), operation in declared.items()
        for status in KONNECT_STATUSES
        if status in operation["responses"]
        and (method, path, status) not in CASES
        and (method, path, status) not in NOT_PRODUCED
    ]
    assert missing == []
    for method, path, status in NOT_PRODUCED:
        assert status in declared[(method, path)]["responses"]
        assert (method, path, status) not in CASES


@pytest.mark.parametrize(
    ("method", "path", "status"), CASES, ids=[f"{s} {m.upper()} {p}" for m, p, s in CASES]
)
async def test_each_case_gets_its_status_and_changes_nothing(
    api: ApiClient, api_runtime: Runtime, world: World, method: str, path: str, status: str
) -> None:
    case = case_for(world, method, path, status)
    assert case is not None
    async with nothing_written(api_runtime):
        reply = await send(api, case)
    assert_konnect_problem(reply, method, path, status)


@pytest.mark.parametrize(("method", "path"), WITH_BODY, ids=[f"{m.upper()} {p}" for m, p in WITH_BODY])
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
async def test_a_body_of_another_media_type_is_a_415(
    api: ApiClient, api_runtime: Runtime, world: World, method: str, path: str, content_type: str
) -> None:
    raw = b'{"name": "x"}'
    case = Case(method, _path(path, _ids(world, path)), raw=raw, content_type=content_type)
    async with nothing_written(api_runtime):
        reply = await send(api, case)
    assert_konnect_problem(reply, method, path, "415")
