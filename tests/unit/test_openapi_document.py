"""The service's OpenAPI document: a valid OpenAPI 3.1 document, built from Konnect's in-scope
operations and our parts, describing exactly the routes the application serves."""

import copy
import json
from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from services.api.app import create_app
from services.api.openapi.convert import to_openapi_31
from services.api.openapi.document import build_document, merge, operations
from services.api.openapi.reference import in_scope_reference
from services.authorization import SCOPES

KONNECT_OPERATION_COUNT = 29  # 28 tagged in scope, plus GET /organizations/me


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_document()


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    errors = [error.message for error in OpenAPIV31SpecValidator(document).iter_errors()]
    assert errors == []


def test_the_reference_is_cut_to_the_in_scope_operations() -> None:
    reference = in_scope_reference()
    found = list(operations(reference))
    assert len(found) == KONNECT_OPERATION_COUNT
    assert not [path for path, *_ in found if path.startswith("/users")]
    assert {tag["name"] for tag in reference["tags"]} >= {"System Accounts", "Teams", "Roles"}
    assert "UserCollection" not in reference["components"].get("responses", {})


def test_the_document_describes_exactly_the_served_routes(document: dict[str, Any]) -> None:
    app = create_app()
    served = {
        (resource.canonical.removeprefix("/v3"), route.method.lower())
        for resource in app.router.resources()
        if resource.canonical.startswith("/v3/")
        for route in resource
        if route.method != "HEAD"
    }
    documented = {(path, method) for path, method, *_ in operations(document)}
    assert served == documented


def test_no_openapi_3_0_keyword_is_left(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    assert '"nullable"' not in text
    assert '"exclusiveMinimum": true' not in text


def test_extension_fields_are_added_to_konnect_schemas(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["SystemAccount"]["properties"]["enabled"]["type"] == "boolean"
    token = schemas["SystemAccountAccessToken"]["properties"]
    assert {"state", "revoked_at", "scopes", "auto_extend_seconds", "max_expires_at"} <= set(token)
    created = document["components"]["responses"]["SystemAccountAccessTokenCreated"]
    assert "state" in created["content"]["application/json"]["schema"]["properties"]


def test_every_authenticated_operation_lists_its_generic_problems(document: dict[str, Any]) -> None:
    for path, method, operation, _shared in operations(document):
        if operation.get("security") == []:
            continue
        assert {"401", "403", "503"} <= set(operation["responses"]), (method, path)
        if "requestBody" in operation:
            assert {"400", "413", "415"} <= set(operation["responses"]), (method, path)


def test_the_openapi_path_is_public(document: dict[str, Any]) -> None:
    assert document["paths"]["/openapi.json"]["get"]["security"] == []
    assert document["security"] == [{"systemAccountAccessToken": []}]


def test_nullable_becomes_a_type_array_or_an_any_of() -> None:
    converted = to_openapi_31(
        {
            "openapi": "3.0.2",
            "components": {
                "schemas": {
                    "Region": {"type": "string", "enum": ["us", "eu"], "nullable": True},
                    "Ref": {"allOf": [{"$ref": "#/components/schemas/Region"}], "nullable": True},
                    "Strict": {"type": "string", "nullable": False},
                    "Count": {"type": "integer", "minimum": 0, "exclusiveMinimum": True},
                    "Named": {"type": "object", "properties": {"nullable": {"type": "string"}}},
                }
            },
        }
    )
    schemas = converted["components"]["schemas"]
    assert converted["openapi"] == "3.1.0"
    assert schemas["Region"] == {"type": ["string", "null"], "enum": ["us", "eu", None]}
    assert schemas["Ref"] == {
        "anyOf": [{"allOf": [{"$ref": "#/components/schemas/Region"}]}, {"type": "null"}]
    }
    assert schemas["Strict"] == {"type": "string"}
    assert schemas["Count"] == {"type": "integer", "exclusiveMinimum": 0}
    assert schemas["Named"]["properties"] == {"nullable": {"type": "string"}}


def test_a_part_may_not_redefine_an_operation(document: dict[str, Any]) -> None:
    part: dict[str, Any] = {"paths": {"/system-accounts": {"get": {"responses": {}}}}}
    with pytest.raises(ValueError, match="defined twice"):
        merge(copy.deepcopy(document), part)


def test_a_new_part_adds_its_paths_and_components(document: dict[str, Any]) -> None:
    part = {
        "tags": [{"name": "Example"}],
        "paths": {"/examples": {"get": {"responses": {"200": {"description": "ok"}}}}},
        "components": {"schemas": {"Example": {"type": "object"}}},
    }
    extended = copy.deepcopy(document)
    merge(extended, part)
    assert "/examples" in extended["paths"]
    assert "Example" in extended["components"]["schemas"]
    assert {"name": "Example"} in extended["tags"]


def test_the_documented_scopes_are_the_ones_a_token_may_name(document: dict[str, Any]) -> None:
    body = document["components"]["requestBodies"]["CreateSystemAccountAccessToken"]
    items = body["content"]["application/json"]["schema"]["properties"]["scopes"]["items"]
    assert items["enum"] == list(SCOPES)
    for path, method, operation, _shared in operations(document):
        for requirement in operation.get("security", document["security"]):
            assert set(requirement.get("systemAccountAccessToken", [])) <= set(SCOPES), (method, path)
