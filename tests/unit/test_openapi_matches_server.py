"""The served OpenAPI document says exactly what the server enforces on request bodies.

For every operation of the document with a JSON request body, the msgspec Struct its handler decodes
the body into is found in the handler's code (the ``read_body(request, Struct)`` or
``decode_body(raw, Struct)`` call, in the handler or a function of its module it calls), and the
document's schema must agree with the Struct's own JSON schema (``msgspec.json.schema``) on: whether
unknown properties are refused (``additionalProperties: false`` exactly when the Struct has
``forbid_unknown_fields``), the property names, which are required, which accept null, and the
bounds (``minLength``/``maxLength``, ``minimum``/``maximum``, ``maxItems``, ``maxProperties``).
Rules only the domain knows (a role name in the catalogue, the deployment's token lifetime) are not
part of a Struct and are not compared. The query side: every ``filter`` object refuses unknown
filter fields, as the list routes do; ``as_of`` is declared on exactly the reads whose handler reads
it. The headers: ``X-Request-Id`` on every operation and response with the pattern the server
honours, ``Idempotency-Key`` on every POST with the server's bounds.
"""

import ast
import inspect
import textwrap
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import msgspec
import pytest

from services.api.app import create_app
from services.api.openapi.document import READS_BY_POST, build_document, operations
from services.api.problems import MAX_REQUEST_ID, REQUEST_ID_PATTERN
from services.api.routes import tokens as token_routes
from services.idempotency_claims import MAX_KEY_LENGTH

Document = dict[str, Any]
BODY_READERS = frozenset({"read_body", "decode_body"})
BOUNDS = ("minLength", "maxLength", "minimum", "maximum", "maxItems", "maxProperties")


def _called_names(function: Callable[..., Any]) -> Iterator[ast.Call]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    yield from (node for node in ast.walk(tree) if isinstance(node, ast.Call))


def body_struct(handler: Callable[..., Any], seen: frozenset[str] = frozenset()) -> type | None:
    """The Struct ``handler`` decodes its body into: the second argument of its ``read_body`` or
    ``decode_body`` call, or of such a call in a function of the same module that it calls."""
    module: ModuleType = inspect.getmodule(handler)  # type: ignore[assignment]
    callees = []
    for call in _called_names(handler):
        name = call.func.id if isinstance(call.func, ast.Name) else None
        if name in BODY_READERS and len(call.args) >= 2 and isinstance(call.args[1], ast.Name):
            found: type = getattr(module, call.args[1].id)
            return found
        if name is not None and name not in seen and inspect.isfunction(getattr(module, name, None)):
            callee = getattr(module, name)
            if inspect.getmodule(callee) is module:
                callees.append(callee)
    for callee in callees:
        found_in_callee = body_struct(callee, seen | {handler.__name__})
        if found_in_callee is not None:
            return found_in_callee
    return None


def _served_structs() -> dict[tuple[str, str], type]:
    app = create_app()
    structs = {}
    for resource in app.router.resources():
        for route in resource:
            if route.method == "HEAD" or not resource.canonical.startswith("/v3/"):
                continue
            struct = body_struct(route.handler)
            if struct is not None:
                structs[(resource.canonical.removeprefix("/v3"), route.method.lower())] = struct
    return structs


def _resolve(document: Document, node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = document
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _arms(document: Document, schema: Document) -> list[Document]:
    """The alternatives of a schema (``anyOf``/``oneOf``, a type array), each with one type."""
    schema = _resolve(document, schema)
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            return [arm for option in schema[combinator] for arm in _arms(document, option)]
    types = schema.get("type")
    if types is None and "enum" in schema:  # msgspec's Literal: an enum without a type
        types = sorted(
            {"string" if isinstance(v, str) else "null" if v is None else "other" for v in schema["enum"]}
        )
    if isinstance(types, list):
        return [{**schema, "type": one} for one in types]
    return [schema]


def _shape(document: Document, schema: Document) -> dict[str, Any]:
    """What a property's schema enforces, in comparable form: the non-null types, null allowed or
    not, and the bounds."""
    arms = _arms(document, schema)
    shape: dict[str, Any] = {
        "nullable": any(arm.get("type") == "null" for arm in arms),
        "types": sorted(str(arm.get("type")) for arm in arms if arm.get("type") != "null"),
    }
    for arm in arms:
        shape.update({bound: arm[bound] for bound in BOUNDS if bound in arm})
    return shape


def _struct_schema(struct: type) -> Document:
    schema = msgspec.json.schema(struct)
    return {**schema["$defs"][struct.__name__], "$defs": schema["$defs"]}


def _json_body_schema(document: Document, operation: Document) -> Document:
    body = _resolve(document, operation["requestBody"])
    schema: Document = _resolve(document, body["content"]["application/json"]["schema"])
    return schema


@pytest.fixture(scope="module")
def document() -> Document:
    return build_document()


@pytest.fixture(scope="module")
def served() -> dict[tuple[str, str], type]:
    return _served_structs()


def body_operations() -> list[tuple[str, str]]:
    document = build_document()
    return [
        (path, method)
        for path, method, operation, _shared in operations(document)
        if "application/json" in _resolve(document, operation.get("requestBody", {})).get("content", {})
    ]


def test_every_documented_body_is_read_into_a_struct(
    document: Document, served: dict[tuple[str, str], type]
) -> None:
    assert set(body_operations()) == set(served)


@pytest.mark.parametrize(("path", "method"), body_operations())
def test_the_documented_body_is_the_struct(
    path: str, method: str, document: Document, served: dict[tuple[str, str], type]
) -> None:
    struct = served[(path, method)]
    ours = _json_body_schema(document, document["paths"][path][method])
    theirs = _struct_schema(struct)
    forbids = struct.__struct_config__.forbid_unknown_fields  # type: ignore[attr-defined]
    assert (ours.get("additionalProperties") is False) == forbids
    assert set(ours.get("properties", {})) == set(theirs["properties"])
    assert set(ours.get("required", [])) == set(theirs["required"])
    for name, schema in theirs["properties"].items():
        documented = _shape(document, ours["properties"][name])
        enforced = _shape(theirs, schema)
        assert documented == enforced, name


def test_every_filter_object_refuses_unknown_filters(document: Document) -> None:
    for path, method, operation, _shared in operations(document):
        for parameter in operation.get("parameters", []):
            parameter = _resolve(document, parameter)
            if parameter.get("name") == "filter" and parameter.get("style") == "deepObject":
                assert parameter["schema"].get("additionalProperties") is False, (method, path)


def test_the_access_token_list_declares_exactly_the_filters_it_accepts(document: Document) -> None:
    operation = document["paths"]["/system-accounts/{accountId}/access-tokens"]["get"]
    [declared] = [
        _resolve(document, p)["schema"]["properties"]
        for p in operation["parameters"]
        if _resolve(document, p).get("name") == "filter"
    ]
    assert set(declared) == set(token_routes.LIST_FILTERS)
    assert _resolve(document, declared["federated"])["type"] == "boolean"


# -- headers and query parameters the server reads beyond Konnect's ----------------------------


def _reads_as_of(handler: Callable[..., Any]) -> bool:
    """The handler calls ``as_of_param`` (``audit.as_of_param(request)``)."""
    for call in _called_names(handler):
        name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", None)
        if name == "as_of_param":
            return True
    return False


def _parameters(document: Document, operation: Document, shared: list[Document]) -> dict[str, Document]:
    resolved = [_resolve(document, p) for p in [*operation.get("parameters", []), *shared]]
    return {p["name"]: p for p in resolved}


def test_as_of_is_declared_exactly_where_the_server_reads_it(document: Document) -> None:
    app = create_app()
    served = {
        (resource.canonical.removeprefix("/v3"), route.method.lower())
        for resource in app.router.resources()
        if resource.canonical.startswith("/v3/")
        for route in resource
        if route.method == "GET" and _reads_as_of(route.handler)
    }
    documented = {
        (path, method)
        for path, method, operation, shared in operations(document)
        if "as_of" in _parameters(document, operation, shared)
    }
    assert served and served == documented
    for path, method in documented:
        operation = document["paths"][path][method]
        as_of = _parameters(document, operation, [])["as_of"]
        assert as_of["in"] == "query" and as_of["schema"]["format"] == "date-time"


def test_every_operation_declares_the_request_id_the_server_honours(document: Document) -> None:
    """Any X-Request-Id is accepted (one the server does not honour is replaced, never refused), so
    the parameter's schema constrains nothing; the response header's says which are honoured."""
    for path, method, operation, shared in operations(document):
        header = _parameters(document, operation, shared).get("X-Request-Id")
        assert header is not None and header["in"] == "header", (method, path)
        assert header["schema"] == {"type": "string"}, (method, path)
        for status, response in operation["responses"].items():
            answered = _resolve(document, response).get("headers", {}).get("X-Request-Id")
            assert answered is not None, (method, path, status)
            schema = _resolve(document, answered)["schema"]
            assert schema["pattern"] == f"^{REQUEST_ID_PATTERN.pattern}$"
            assert (schema["minLength"], schema["maxLength"]) == (1, MAX_REQUEST_ID)


def test_every_post_command_declares_the_idempotency_key_with_the_server_bounds(document: Document) -> None:
    """POST reads (introspection) never look at the header, so they do not declare it."""
    for path, method, operation, shared in operations(document):
        if method != "post":
            continue
        key = _parameters(document, operation, shared).get("Idempotency-Key")
        if operation.get("operationId") in READS_BY_POST:
            assert key is None, path
            continue
        assert key is not None and key["in"] == "header", path
        assert (key["schema"]["minLength"], key["schema"]["maxLength"]) == (1, MAX_KEY_LENGTH), path
