"""Kong Konnect's Identity v3 reference spec, shipped with the package, and the part of it we serve.

This module owns which Konnect operations are in scope (``IN_SCOPE_TAGS`` minus users, plus
``GET /organizations/me``) and ``in_scope_reference()``: the reference document (OpenAPI 3.0, as Kong
publishes it) cut down to those operations and exactly the components they reach through ``$ref``.
The result is still Konnect's own text: the conformance test runs it against the service, and
``services.api.openapi.document`` converts it to OpenAPI 3.1 and adds our extensions.
"""

import copy
import functools
from collections.abc import Iterator
from importlib import resources
from typing import Any

import yaml

REFERENCE_FILE = "konnect-identity-v3.openapi.yaml"
IN_SCOPE_TAGS = frozenset(
    {
        "System Accounts",
        "System Accounts - Access Tokens",
        "System Accounts - Roles",
        "System Accounts - Team Membership",
        "Teams",
        "Roles",
    }
)
OUT_OF_SCOPE_PATH_PREFIXES = ("/users",)  # humans' roles share the "Roles" tag
EXTRA_OPERATIONS = frozenset({("/organizations/me", "get")})
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

Document = dict[str, Any]


@functools.cache
def _reference() -> Document:
    text = resources.files(__package__).joinpath(REFERENCE_FILE).read_text(encoding="utf-8")
    return load_yaml(text)


def load_yaml(text: str) -> Document:
    """YAML through libyaml's safe loader when PyYAML has it (ten times faster), else pure Python."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loaded: Document = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    return loaded


def reference() -> Document:
    """The whole reference document (a fresh copy: callers may change it)."""
    return copy.deepcopy(_reference())


def is_in_scope(path: str, method: str, operation: dict[str, Any]) -> bool:
    if (path, method) in EXTRA_OPERATIONS:
        return True
    if path.startswith(OUT_OF_SCOPE_PATH_PREFIXES):
        return False
    return bool(IN_SCOPE_TAGS.intersection(operation.get("tags", ())))


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _component(document: Document, ref: str) -> tuple[str, str, Any]:
    prefix, root, section, name = ref.split("/")
    if (prefix, root) != ("#", "components"):
        raise ValueError(f"only references to local components are supported: {ref}")
    return section, name, document["components"][section][name]


def in_scope_reference() -> Document:
    """The reference with only the in-scope operations and the components they use."""
    source = reference()
    paths: dict[str, dict[str, Any]] = {}
    for path, item in source["paths"].items():
        kept = {
            method: operation
            for method, operation in item.items()
            if method in HTTP_METHODS and is_in_scope(path, method, operation)
        }
        if kept:
            if "parameters" in item:
                kept["parameters"] = item["parameters"]
            paths[path] = kept
    components: dict[str, dict[str, Any]] = {"securitySchemes": source["components"]["securitySchemes"]}
    pending = list(_refs(paths))
    while pending:
        section, name, value = _component(source, pending.pop())
        if name not in components.setdefault(section, {}):
            components[section][name] = value
            pending.extend(_refs(value))
    used_tags = {
        tag
        for item in paths.values()
        for op in item.values()
        if isinstance(op, dict)
        for tag in op.get("tags", ())
    }
    return {
        "openapi": source["openapi"],
        "info": source["info"],
        "servers": source["servers"],
        "security": source["security"],
        "tags": [tag for tag in source.get("tags", []) if tag["name"] in used_tags],
        "paths": paths,
        "components": {section: dict(sorted(items.items())) for section, items in sorted(components.items())},
    }
