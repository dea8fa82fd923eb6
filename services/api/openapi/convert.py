"""OpenAPI 3.0 to 3.1: the schema keywords whose meaning changed, converted in a copy of a document.

* ``nullable: true`` becomes a type array (``type: [string, "null"]``, with ``null`` added to an
  ``enum``), or ``anyOf: [<schema>, {type: "null"}]`` for a schema without ``type`` (a ``$ref``, an
  ``allOf``); ``nullable: false`` is dropped;
* boolean ``exclusiveMinimum``/``exclusiveMaximum`` become the numbers they qualified.

``example`` (deprecated in 3.1 but valid), ``readOnly``/``writeOnly`` and ``allowEmptyValue`` mean the
same in both versions and are kept. ``nullable`` is recognised only with a boolean value, so a
property that happens to be named ``nullable`` is left alone.
"""

import copy
from typing import Any

OPENAPI_VERSION = "3.1.0"
_BOUNDS = (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum"))


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    nullable = schema.pop("nullable")
    if not nullable:
        return schema
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        schema["type"] = [*types, "null"] if "null" not in types else types
        if "enum" in schema and None not in schema["enum"]:
            schema["enum"] = [*schema["enum"], None]
        return schema
    return {"anyOf": [schema, {"type": "null"}]}


def _bounds(schema: dict[str, Any]) -> dict[str, Any]:
    for exclusive, inclusive in _BOUNDS:
        if isinstance(schema.get(exclusive), bool) and schema.pop(exclusive) and inclusive in schema:
            schema[exclusive] = schema.pop(inclusive)
    return schema


def _convert(node: Any) -> Any:
    if isinstance(node, list):
        return [_convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _convert(value) for key, value in node.items()}
    if isinstance(converted.get("nullable"), bool):
        converted = _nullable(converted)
    return _bounds(converted)


def to_openapi_31(document: dict[str, Any]) -> dict[str, Any]:
    """A converted copy of an OpenAPI 3.0 ``document``."""
    converted: dict[str, Any] = _convert(copy.deepcopy(document))
    converted["openapi"] = OPENAPI_VERSION
    return converted
