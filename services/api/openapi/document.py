"""The service's OpenAPI 3.1 document, assembled from parts.

1. Konnect's in-scope operations and the components they use (``reference.in_scope_reference``),
   converted to OpenAPI 3.1 (``convert``);
2. what we add to or say beyond Konnect's text, in order: our extension fields merged into its
   schemas (``parts/konnect-additions.yaml``); our extra query parameters on its operations
   (``parts/konnect-parameters.yaml``: page[...] on the assigned-role lists); the fields of its
   response schemas that we send as null when they have no value (``parts/konnect-responses.yaml``);
   what the server enforces on its request bodies and parameters (``parts/konnect-restrictions.yaml``:
   bounds, required fields, no unknown properties, the rule for names); and every ``filter``
   object closed (the list routes refuse unknown filters);
3. our own parts (``PARTS``: ``parts/<name>.yaml``, each with ``paths``, ``components`` and ``tags``
   in Konnect's style). Adding an endpoint family is one YAML file and one entry in ``PARTS``;
4. the right each authenticated operation needs, as its security requirement
   (``parts/operation-scopes.yaml``, which must list every one of them; docs/scopes.md);
5. the responses every operation of this service can give that Konnect does not list on each
   (``_complete``): 400 where the operation validates input, 401/403 everywhere but public paths,
   413/415 with a body, the ``Idempotency-Key`` header and its 409/422 on POST commands (not on the
   POST reads of ``READS_BY_POST``, which never look at the header), 503 while starting; the
   ``X-Request-Id`` header on every operation and every response, and the ``as_of`` query parameter
   on the reads that answer as of a past instant (``AS_OF_OPERATIONS``).

Paths are relative to the one server, ``/v3``, as Konnect's are to its ``.../v3`` server.
"""

import copy
from collections.abc import Iterable, Iterator
from importlib import resources
from typing import Any

from services.api.openapi.convert import to_openapi_31
from services.api.openapi.reference import HTTP_METHODS, Document, in_scope_reference, load_yaml

PARTS = (
    "service-responses",
    "token-lifecycle",
    "token-usage",
    "federated-credentials",
    "token-exchange",
    "audit-events",
    "introspection",
    "openapi-document",
)
ADDITIONS = "konnect-additions"
PARAMETERS = "konnect-parameters"
RESPONSES = "konnect-responses"
RESTRICTIONS = "konnect-restrictions"
AS_OF_OPERATIONS = frozenset(
    {
        ("/system-accounts/{accountId}", "get"),
        ("/system-accounts/{accountId}/access-tokens", "get"),
        ("/system-accounts/{accountId}/access-tokens/{tokenId}", "get"),
        ("/system-accounts/{accountId}/assigned-roles", "get"),
        ("/system-accounts/{accountId}/federated-credentials", "get"),
        ("/system-accounts/{accountId}/teams", "get"),
    }
)
"""The reads ``services.api.routes.audit.as_of_param`` serves as of a past instant."""
OPERATION_SCOPES = "operation-scopes"
READS_BY_POST = frozenset({"introspect-token", "exchange-token"})
"""POST operations that take no ``Idempotency-Key`` (nor its 409/422): the reads, which run no
command, and the token exchange, whose id-token is used once (a retry is refused as a replay)."""
SERVER_URL = "/v3"
SECURITY_SCHEME = "systemAccountAccessToken"
TITLE = "tokenledger"
VERSION = "0.1.0"
DESCRIPTION = (
    "System accounts, their access tokens, roles and teams. The operations Kong Konnect's Identity API "
    "v3 has are served with its paths, fields, status codes and problem+json errors; what Konnect "
    "lacks (revocation, rotation, introspection...) is marked Extension."
)


def load_part(name: str) -> Document:
    text = resources.files(__package__).joinpath("parts", f"{name}.yaml").read_text(encoding="utf-8")
    return load_yaml(text)


def _resolve_pointer(document: Document, pointer: str) -> Any:
    """The node a JSON pointer (RFC 6901) names; a token indexes a list by its position."""
    node: Any = document
    for token in pointer.lstrip("/").split("/"):
        key = token.replace("~1", "/").replace("~0", "~")
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node


def _add_properties(document: Document, additions: Document) -> None:
    for pointer, properties in additions.items():
        schema = _resolve_pointer(document, pointer)
        clash = set(schema.setdefault("properties", {})) & set(properties)
        if clash:
            raise ValueError(f"{pointer} already has {sorted(clash)}")
        schema["properties"].update(copy.deepcopy(properties))


def _parameter_key(document: Document, parameter: Document) -> tuple[str, str]:
    resolved = _parameter(document, parameter)
    return resolved["name"], resolved["in"]


def _add_parameters(document: Document, additions: Document) -> None:
    for pointer, parameters in additions.items():
        operation = _resolve_pointer(document, pointer)
        present = operation.setdefault("parameters", [])
        clash = {_parameter_key(document, p) for p in present} & {
            _parameter_key(document, p) for p in parameters
        }
        if clash:
            raise ValueError(f"{pointer} already has {sorted(clash)}")
        present.extend(copy.deepcopy(parameters))


def _deep_merge(target: Document, changes: Document) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _restrict(document: Document, restrictions: Document) -> None:
    for pointer, keywords in restrictions.items():
        _deep_merge(_resolve_pointer(document, pointer), keywords)


def _close_filters(document: Document) -> None:
    """``filter`` (deepObject) parameters name every filter a list route accepts; others are a 400."""
    for _path, _method, operation, _shared in operations(document):
        for parameter in operation.get("parameters", []):
            if parameter.get("name") == "filter" and parameter.get("style") == "deepObject":
                parameter["schema"]["additionalProperties"] = False


def merge(document: Document, part: Document) -> None:
    """Adds ``part``'s paths, components and tags to ``document``; a clash is an error, except an
    identical component (parts may repeat Konnect's)."""
    for path, item in part.get("paths", {}).items():
        target = document["paths"].setdefault(path, {})
        clash = set(target) & {key for key in item if key in HTTP_METHODS}
        if clash:
            raise ValueError(f"{path}: {sorted(clash)} defined twice")
        target.update(copy.deepcopy(item))
    for section, items in part.get("components", {}).items():
        target = document["components"].setdefault(section, {})
        for name, value in items.items():
            if name in target and target[name] != value:
                raise ValueError(f"components/{section}/{name} defined twice, differently")
            target[name] = copy.deepcopy(value)
    known = {tag["name"] for tag in document["tags"]}
    document["tags"].extend(tag for tag in part.get("tags", []) if tag["name"] not in known)


def operations(document: Document) -> Iterator[tuple[str, str, Document, list[Document]]]:
    """(path, method, operation, path-level parameters) of every operation."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation, item.get("parameters", [])


def _ref(section: str, name: str) -> Document:
    return {"$ref": f"#/components/{section}/{name}"}


def _parameter(document: Document, parameter: Document) -> Document:
    return _resolve_pointer(document, parameter["$ref"][1:]) if "$ref" in parameter else parameter


def _validates_input(document: Document, operation: Document, shared: Iterable[Document]) -> bool:
    parameters = [_parameter(document, p) for p in [*operation.get("parameters", []), *shared]]
    return "requestBody" in operation or any(
        p["in"] == "query" or p.get("schema", {}).get("format") == "uuid" for p in parameters
    )


def _request_ids(document: Document) -> None:
    """Every operation takes ``X-Request-Id`` and every response answers it."""
    header = _ref("headers", "RequestId")
    for _path, _method, operation, _shared in operations(document):
        operation.setdefault("parameters", []).append(_ref("parameters", "RequestId"))
        for response in operation["responses"].values():
            if "$ref" not in response:
                response.setdefault("headers", {})["X-Request-Id"] = header
    for response in document["components"]["responses"].values():
        response.setdefault("headers", {})["X-Request-Id"] = header


def _as_of(document: Document) -> None:
    for path, method in sorted(AS_OF_OPERATIONS):
        operation = document["paths"][path][method]
        operation.setdefault("parameters", []).append(_ref("parameters", "AsOf"))


SCOPES_DESCRIPTION = (
    "\n\ntokenledger: each operation's security requirement names the right it needs (an empty list:"
    " any valid token). The account must hold it (Admin confers every right, Viewer the read rights,"
    " Auditor audit:read, Introspector tokens:introspect, Metrics metrics:read) and a token's scopes,"
    " when it has any, must include it, by name or through an alias: identity:read (accounts:read,"
    " tokens:read, roles:read, teams:read) or identity:write (accounts:write, tokens:write,"
    " roles:write, teams:write). A right it lacks is a 403."
)


def _require_scopes(document: Document, scopes: Document) -> None:
    """Sets each authenticated operation's security requirement to the rights ``scopes`` lists for
    it; an authenticated operation it does not list, or an operation it lists that the document
    lacks, is an error."""
    listed = {(path, method) for path, methods in scopes.items() for method in methods}
    for path, method, operation, _shared in operations(document):
        if operation.get("security") == []:
            continue
        if (path, method) not in listed:
            raise ValueError(f"{method} {path}: no right listed in {OPERATION_SCOPES}.yaml")
        operation["security"] = [{SECURITY_SCHEME: list(scopes[path][method])}]
        listed.discard((path, method))
    if listed:
        raise ValueError(f"{OPERATION_SCOPES}.yaml lists operations the document lacks: {sorted(listed)}")
    schemes = document["components"]["securitySchemes"]
    scheme = schemes[SECURITY_SCHEME]
    schemes[SECURITY_SCHEME] = {**scheme, "description": scheme["description"] + SCOPES_DESCRIPTION}


def _complete(document: Document) -> None:
    _as_of(document)
    for _path, method, operation, shared in operations(document):
        if operation.get("security") == []:
            continue
        responses = operation["responses"]
        added = {"401": _ref("responses", "IdentityUnauthenticated")}
        added["403"] = _ref("responses", "IdentityPermissionDenied")
        if _validates_input(document, operation, shared):
            added["400"] = _ref("responses", "IdentityBadRequest")
        if "requestBody" in operation:
            added["413"] = _ref("responses", "PayloadTooLarge")
            added["415"] = _ref("responses", "UnsupportedMediaType")
        if method == "post" and operation.get("operationId") not in READS_BY_POST:
            operation.setdefault("parameters", []).append(_ref("parameters", "IdempotencyKey"))
            added["409"] = _ref("responses", "IdentityConflict")
            added["422"] = _ref("responses", "IdempotencyKeyReused")
        added["503"] = _ref("responses", "ServiceUnavailable")
        for status, response in added.items():
            responses.setdefault(status, response)
        operation["responses"] = dict(sorted(responses.items()))


def build_document(parts: Iterable[str] = PARTS) -> Document:
    """The whole document: Konnect's operations, our additions and parts, every response completed."""
    konnect = to_openapi_31(in_scope_reference())
    schemes = konnect["components"]["securitySchemes"]
    document: Document = {
        "openapi": konnect["openapi"],
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": DESCRIPTION,
            "x-konnect-identity-version": konnect["info"]["version"],
        },
        "servers": [{"url": SERVER_URL}],
        "security": [{SECURITY_SCHEME: []}],
        "tags": konnect["tags"],
        "paths": konnect["paths"],
        "components": {
            **konnect["components"],
            "securitySchemes": {SECURITY_SCHEME: schemes[SECURITY_SCHEME]},
        },
    }
    _add_properties(document, load_part(ADDITIONS))
    _add_parameters(document, load_part(PARAMETERS))
    _restrict(document, load_part(RESPONSES))
    for name in parts:
        merge(document, to_openapi_31(load_part(name)))
    _restrict(document, load_part(RESTRICTIONS))
    _close_filters(document)
    _require_scopes(document, load_part(OPERATION_SCOPES))
    _complete(document)
    _request_ids(document)
    return document
