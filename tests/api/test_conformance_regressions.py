"""One focused test per violation schemathesis found against Konnect's reference spec or our own
OpenAPI document (``tests/api/test_conformance.py``), so each stays fixed without the fuzzer."""

import functools
import uuid
from typing import Any

import jsonschema  # type: ignore[import-untyped]

from services.api.openapi.document import build_document
from tests.api.identity_support import assert_problem
from tests.api_fixture import ApiClient, unique

NUL = "\u0000"


@functools.cache
def _components() -> dict[str, Any]:
    components: dict[str, Any] = build_document()["components"]
    return components


def assert_conforms(body: Any, schema_name: str) -> None:
    """``body`` is valid under ``components/schemas/<schema_name>`` of the served document."""
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": _components()}
    jsonschema.Draft202012Validator(schema).validate(body)


async def _team(api: ApiClient, **fields: Any) -> dict[str, Any]:
    reply = await api.post("/v3/teams", {"name": unique("team"), **fields})
    assert reply.status == 201, reply.body
    body: dict[str, Any] = reply.body
    return body


async def test_a_nul_character_in_a_body_string_is_a_400_naming_the_field(api: ApiClient) -> None:
    """Was a 500: PostgreSQL cannot store U+0000 in text or jsonb."""
    reply = await api.post("/v3/system-accounts", {"name": f"a{NUL}b", "description": "d"})
    assert_problem(reply, 400, "name", "invalid")


async def test_a_nul_character_in_a_label_key_is_a_400_naming_the_label(api: ApiClient) -> None:
    reply = await api.post("/v3/teams", {"name": unique("team"), "labels": {f"e{NUL}nv": "x"}})
    assert reply.status == 400, reply.body


async def test_an_escaped_backslash_before_u0000_is_not_a_nul(api: ApiClient) -> None:
    reply = await api.post(
        "/v3/system-accounts", raw=b'{"name": "%s", "description": "d"}' % unique("a\\\\u0000").encode()
    )
    assert reply.status == 201, reply.body
    assert reply.body["name"].startswith("a\\u0000")


async def test_a_nul_character_in_a_filter_value_is_a_400(api: ApiClient) -> None:
    reply = await api.get("/v3/system-accounts?filter[name][eq]=%00")
    assert_problem(reply, 400, "filter[name][eq]")


async def test_a_nul_character_in_a_label_filter_key_is_a_400(api: ApiClient) -> None:
    reply = await api.get("/v3/teams?filter[labels.a%00b][eq]=x")
    assert_problem(reply, 400, "filter[labels.a\x00b][eq]")


async def test_a_team_created_without_description_lists_it_as_null(api: ApiClient) -> None:
    """Was '' in GET and list responses (null in the POST response), which the reference's
    ``description`` (nullable, minLength 1) does not allow."""
    team = await _team(api)
    assert team["description"] is None
    fetched = await api.get(f"/v3/teams/{team['id']}")
    assert fetched.body["description"] is None
    listed = await api.get("/v3/teams?page[size]=100")
    assert all(item["description"] != "" for item in listed.body["data"])


async def test_membership_routes_answer_404_for_a_malformed_team_id(api: ApiClient) -> None:
    """The System Accounts - Team Membership operations type ``teamId`` as a plain string and list no
    400: a malformed id is an id that does not exist (as for ``accountId``)."""
    assert_problem(await api.get("/v3/teams/0/system-accounts"), 404)
    assert_problem(await api.post("/v3/teams/0/system-accounts", {"id": str(uuid.uuid4())}), 404)
    account = await api.post("/v3/system-accounts", {"name": unique("member"), "description": "d"})
    assert_problem(await api.delete(f"/v3/teams/0/system-accounts/{account.body['id']}"), 404)


async def test_an_unknown_entity_type_is_a_400_whose_enum_item_lists_the_choices(api: ApiClient) -> None:
    """Was ``{"rule": "enum"}`` without ``choices``, which matches none of Konnect's
    ``invalid_parameters`` item schemas (its enum item requires ``choices``)."""
    account = await api.post("/v3/system-accounts", {"name": unique("roles"), "description": "d"})
    body = {
        "role_name": "Viewer",
        "entity_id": str(uuid.uuid4()),
        "entity_type_name": "Spaceships",
        "entity_region": "us",
    }
    reply = await api.post(f"/v3/system-accounts/{account.body['id']}/assigned-roles", body)
    assert_problem(reply, 400, "entity_type_name", "enum")
    assert_conforms(reply.body, "BadRequestError")
    assert "Control Planes" in reply.body["invalid_parameters"][0]["choices"]


async def test_a_role_outside_its_entity_type_is_a_400_listing_that_types_roles(api: ApiClient) -> None:
    team = await _team(api)
    body = {
        "role_name": "Overlord",
        "entity_id": str(uuid.uuid4()),
        "entity_type_name": "Control Planes",
        "entity_region": "us",
    }
    reply = await api.post(f"/v3/teams/{team['id']}/assigned-roles", body)
    assert_problem(reply, 400, "role_name", "enum")
    assert_conforms(reply.body, "BadRequestError")
    assert "Viewer" in reply.body["invalid_parameters"][0]["choices"]


async def test_a_null_team_description_is_a_400(api: ApiClient) -> None:
    """Was a 201 (negative_data_rejection): Konnect's CreateTeam types ``description`` as a string."""
    reply = await api.post("/v3/teams", {"name": unique("team"), "description": None})
    assert_problem(reply, 400, "description")
    assert_conforms(reply.body, "BadRequestError")


async def test_an_unknown_field_in_an_introspection_form_is_a_400(api: ApiClient) -> None:
    """Was a 200 (negative_data_rejection): the form body, as the JSON one, has no other fields."""
    reply = await api.post(
        "/v3/tokens/introspect",
        raw=b"token=spat_unknown&token_type_hint=x&x-unknown-property=42",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_problem(reply, 400, "x-unknown-property", "unknown_property")
    assert_conforms(reply.body, "BadRequestError")


def test_introspection_declares_no_idempotency_key() -> None:
    """Our document promised a 400 for a malformed Idempotency-Key on introspection, a read that
    never looks at the header (negative_data_rejection found it answered 200)."""
    operation = build_document()["paths"]["/tokens/introspect"]["post"]
    names = [parameter.get("$ref", parameter.get("name")) for parameter in operation.get("parameters", [])]
    assert not any("Idempotency" in str(name) for name in names)
    assert {"409", "422"}.isdisjoint(operation["responses"])
