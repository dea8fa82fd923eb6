"""GET /v3/roles (the role catalogue, in the shape of Konnect's Roles response, with tokenledger's own
``Identity`` entity type; replaceable by configuration) and GET /v3/organizations/me (the entity
Identity roles are granted on), over real HTTP."""

import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestServer

from services.api import state
from services.api.app import create_app
from services.api.openapi.reference import reference
from services.composition import Runtime
from services.dispatch import Dispatcher
from services.roles.catalogue import load_catalogue
from tests.api.identity_support import (
    ORGANIZATION_PATH,
    account_with_roles,
    assert_problem,
    create_account,
    create_team,
    grant_identity_role,
    issue_token,
    organization_id,
    role,
)
from tests.api_fixture import ApiClient, api_settings

IDENTITY_ROLES = {"Admin", "Viewer", "Auditor", "Introspector", "Metrics"}


def roles_schema() -> dict[str, Any]:
    schema: dict[str, Any] = reference()["components"]["responses"]["Roles"]["content"]["application/json"][
        "schema"
    ]
    return schema


def assert_enum(value: Any, schema: dict[str, Any], where: str) -> None:
    assert isinstance(value, str), where
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"


async def test_catalogue_has_the_spec_shape(api: ApiClient) -> None:
    reply = await api.get("/v3/roles")
    assert reply.status == 200, reply.body
    assert reply.content_type == "application/json"
    document = reply.body
    entities = roles_schema()["properties"]
    assert set(entities) <= set(document)
    for key, entity in document.items():
        assert set(entity) == {"name", "roles"}, key
        assert entity["roles"], key
        for role_key, described in entity["roles"].items():
            assert set(described) == {"name", "description"}, (key, role_key)
            assert described["name"] and described["description"]
    for key, entity_schema in entities.items():
        entity = document[key]
        assert_enum(entity["name"], entity_schema["properties"]["name"], key)
        for role_key, role_schema in entity_schema["properties"]["roles"].get("properties", {}).items():
            assert role_key in entity["roles"], (key, role_key)
            for field in ("name", "description"):
                assert_enum(
                    entity["roles"][role_key][field], role_schema["properties"][field], f"{key}.{role_key}"
                )


async def test_catalogue_includes_the_identity_entity_type(api: ApiClient) -> None:
    identity = (await api.get("/v3/roles")).body["identity"]
    assert identity["name"] == "Identity"
    assert {described["name"] for described in identity["roles"].values()} == IDENTITY_ROLES


async def test_every_catalogue_role_can_be_assigned(api: ApiClient) -> None:
    document = (await api.get("/v3/roles")).body
    team = await create_team(api)
    org = await organization_id(api)
    for entity in document.values():
        entity_id = org if entity["name"] == "Identity" else str(uuid.uuid4())
        for described in entity["roles"].values():
            body = role(described["name"], entity["name"], entity_id)
            reply = await api.post(f"/v3/teams/{team['id']}/assigned-roles", body)
            assert reply.status == 201, (body, reply.body)


async def test_any_authenticated_caller_reads_the_catalogue_and_the_organization(api: ApiClient) -> None:
    _, nobody = await account_with_roles(api)
    catalogue = await api.get("/v3/roles", token=nobody)
    assert catalogue.status == 200, catalogue.body
    assert catalogue.body == (await api.get("/v3/roles")).body
    organization = await api.get(ORGANIZATION_PATH, token=nobody)
    assert organization.status == 200, organization.body
    assert organization.body == (await api.get(ORGANIZATION_PATH)).body


async def test_catalogue_and_organization_need_a_token(api: ApiClient) -> None:
    assert_problem(await api.get("/v3/roles", token=""), 401)
    assert_problem(await api.get("/v3/roles", token="spat_unknown"), 401)
    assert_problem(await api.get(ORGANIZATION_PATH, token=""), 401)


@pytest.mark.parametrize("query", ["page[size]=10", "filter[name][eq]=Identity", "lang=en"])
async def test_catalogue_rejects_query_parameters(api: ApiClient, query: str) -> None:
    assert_problem(await api.get(f"/v3/roles?{query}"), 400, query.split("=")[0])


async def test_organization_me(api: ApiClient) -> None:
    reply = await api.get(ORGANIZATION_PATH)
    assert reply.status == 200, reply.body
    assert reply.content_type == "application/json"
    body = reply.body
    schema = reference()["components"]["responses"]["MeOrganization"]["content"]["application/json"]["schema"]
    assert set(body) <= set(schema["properties"])
    assert {"id", "name", "created_at", "updated_at", "state"} <= set(body)
    assert str(uuid.UUID(body["id"])) == body["id"]
    assert isinstance(body["name"], str) and body["name"]
    assert body["state"] in schema["properties"]["state"]["enum"]
    for field in ("created_at", "updated_at"):
        assert body[field].endswith("Z")
        datetime.fromisoformat(body[field])
    assert (await api.get(ORGANIZATION_PATH)).body == body


async def test_identity_roles_are_granted_on_the_organization_only(api: ApiClient) -> None:
    team = await create_team(api)
    org = await organization_id(api)
    on_org = await api.post(f"/v3/teams/{team['id']}/assigned-roles", role("Auditor", "Identity", org))
    assert on_org.status == 201, on_org.body
    elsewhere = await api.post(
        f"/v3/teams/{team['id']}/assigned-roles", role("Auditor", "Identity", str(uuid.uuid4()))
    )
    assert_problem(elsewhere, 400, "entity_id")


CUSTOM_CATALOGUE = {
    "gateways": {
        "name": "Gateways",
        "roles": {"operator": {"name": "Operator", "description": "Runs the gateways."}},
    }
}


@pytest.fixture
async def custom_catalogue_api(
    api_runtime: Runtime, api: ApiClient, tmp_path: Path
) -> AsyncIterator[ApiClient]:
    """A second node serving the same runtime, except for the catalogue, which is loaded as the
    composition root loads it from ``TOKENLEDGER_ROLE_CATALOGUE`` naming ``CUSTOM_CATALOGUE``.
    (Not a second ``open_runtime``: closing one while the log is busy can stall, see the report.)"""
    path = tmp_path / "roles.json"
    path.write_text(json.dumps(CUSTOM_CATALOGUE))
    settings = api_settings(api_runtime.dsn, tmp_path, TOKENLEDGER_ROLE_CATALOGUE=str(path))
    deps = msgspec.structs.replace(api_runtime.deps, catalogue=load_catalogue(settings.role_catalogue))
    dispatcher = Dispatcher(deps, claims=api_runtime.idempotency)
    app = create_app()
    state.bind(app, msgspec.structs.replace(api_runtime, deps=deps, dispatcher=dispatcher))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield ApiClient(session, str(server.make_url("")).rstrip("/"), api.token)
    finally:
        await server.close()


async def test_a_configured_catalogue_replaces_konnects_but_keeps_identity(
    api: ApiClient, custom_catalogue_api: ApiClient
) -> None:
    document = (await custom_catalogue_api.get("/v3/roles")).body
    assert set(document) == {"gateways", "identity"}
    assert document["gateways"] == CUSTOM_CATALOGUE["gateways"]
    assert document["identity"] == (await api.get("/v3/roles")).body["identity"]
    team = await create_team(api)
    refused = await custom_catalogue_api.post(
        f"/v3/teams/{team['id']}/assigned-roles", role("Viewer", "Control Planes", str(uuid.uuid4()))
    )
    assert_problem(refused, 400, "entity_type_name")


def assign_role_enums() -> tuple[set[str], set[str]]:
    """(entity types, role names) of Konnect's AssignRole request schema."""
    request = reference()["components"]["requestBodies"]["AssignRole"]
    properties = request["content"]["application/json"]["schema"]["properties"]
    return set(properties["entity_type_name"]["enum"]), set(properties["role_name"]["enum"])


async def test_the_catalogue_accepts_every_entity_type_and_role_of_konnects_request(api: ApiClient) -> None:
    """Out of the box, every entity type of Konnect's AssignRole enum has roles, every role name of
    its enum is on some entity type, and no role outside its enum is offered (Identity's are ours)."""
    entity_types, role_names = assign_role_enums()
    document = (await api.get("/v3/roles")).body
    offered = {
        (entity["name"], described["name"])
        for entity in document.values()
        if entity["name"] != "Identity"
        for described in entity["roles"].values()
    }
    aliases = {"Mesh Control Planes": "Mesh Control Plane"}  # the request's and /roles' spellings
    assert {aliases.get(t, t) for t in entity_types} <= {t for t, _ in offered}
    assert {r for _, r in offered} == role_names
    team = await create_team(api)
    for entity_type in sorted(entity_types):
        for role_name in sorted(r for t, r in offered if t == aliases.get(entity_type, entity_type)):
            body = role(role_name, entity_type, str(uuid.uuid4()), "eu")
            reply = await api.post(f"/v3/teams/{team['id']}/assigned-roles", body)
            assert reply.status == 201, (body, reply.body)


async def test_kongs_how_to_assigns_viewer_on_control_plane_groups(api: ApiClient) -> None:
    """The request of Kong's system-accounts how-to, as it is written, and the answer it shows."""
    account = await create_account(api)
    body = {
        "role_name": "Viewer",
        "entity_id": "817d0422-45c9-4d88-8d64-45aef05c1ae7",
        "entity_type_name": "Control Plane Groups",
        "entity_region": "eu",
    }
    reply = await api.post(f"/v3/system-accounts/{account['id']}/assigned-roles", body)
    assert reply.status == 201, reply.body
    assert {k: v for k, v in reply.body.items() if k != "id"} == body
    unknown = await api.post(
        f"/v3/system-accounts/{account['id']}/assigned-roles", {**body, "role_name": "Overlord"}
    )
    assert_problem(unknown, 400, "role_name", "enum")
    assert unknown.body["invalid_parameters"][0]["choices"] == ["Viewer"]


async def test_the_cover_rule_holds_on_the_new_entity_types(api: ApiClient) -> None:
    """An Identity Admin holding Viewer on a Portal in every region grants Viewer on that Portal, and
    nothing it does not hold there or elsewhere; the organization admin grants any of them."""
    portal = str(uuid.uuid4())
    grantor = await create_account(api)
    await grant_identity_role(api, f"/v3/system-accounts/{grantor['id']}", "Admin")
    held = await api.post(
        f"/v3/system-accounts/{grantor['id']}/assigned-roles", role("Viewer", "Portals", portal, "*")
    )
    assert held.status == 201, held.body
    token = await issue_token(api, grantor["id"])
    holder = f"/v3/system-accounts/{(await create_account(api))['id']}/assigned-roles"
    granted = await api.post(holder, role("Viewer", "Portals", portal, "eu"), token=token)
    assert granted.status == 201, granted.body
    for refused in [
        role("Admin", "Portals", portal, "eu"),
        role("Viewer", "Portals", str(uuid.uuid4()), "eu"),
        role("Viewer", "APIs", portal, "eu"),
        role("Service Viewer", "Service Hub", portal, "eu"),
    ]:
        assert_problem(await api.post(holder, refused, token=token), 403)
        assert (await api.post(holder, refused)).status == 201
