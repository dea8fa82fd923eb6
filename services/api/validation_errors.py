"""Translation of msgspec's validation errors into Konnect ``invalid_parameters`` items.

msgspec reports one error as text: a message and, usually, where (`` - at `$.labels[...]` `` or
`` - at `key` in `$.labels` ``). This module owns reading that text: the rule comes from the message,
the field from the path rendered without ``$.`` (``labels.env``, ``tags[0]``, ``inner.name``). msgspec
writes ``[...]`` for a map entry; the key is recovered by re-checking the body's entries against the
declared value (or key) type, and enum choices are read from the declared type at the path. Whatever is
not recognised still yields a well-formed item (rule ``invalid``).
"""

import enum
import re
import types
from collections.abc import Mapping, MutableMapping
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec

from services.api.problems import InvalidParameter, InvalidRule


class _MapEntry:
    """The ``[...]`` path segment: some entry of a map."""


_ENTRY = _MapEntry()
Segment = str | int | _MapEntry

_AT_KEY = re.compile(r"(?P<message>.*) - at `key` in `\$(?P<path>[^`]*)`", re.DOTALL)
_AT = re.compile(r"(?P<message>.*) - at `\$(?P<path>[^`]*)`", re.DOTALL)
_SEGMENT = re.compile(r"\.(?P<name>[^.\[]+)|\[(?P<index>\d+)\]|(?P<entry>\[\.\.\.\])")

_MISSING = re.compile(r"Object missing required field `(?P<name>.*)`", re.DOTALL)
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<name>.*)`", re.DOTALL)
_WRONG_TYPE = re.compile(r"Expected `(?P<expected>[^`]*)`, got `[^`]*`")
_LENGTH = re.compile(r"Expected `(?P<kind>str|array|object|bytes)` of length (?P<op>>=|<=) (?P<n>\d+)")
_BOUND = re.compile(r"Expected `(?P<kind>int|float|decimal)` (?P<op>>=|<=|>|<) (?P<n>\S+)")
_PATTERN = re.compile(r"Expected `str` matching regex '(?P<pattern>.*)'", re.DOTALL)
_ENUM = re.compile(r"Invalid enum value .*", re.DOTALL)
_DATE_TIME = re.compile(
    r"Invalid RFC3339 encoded (datetime|date|time)|Expected `(datetime|time)` with (a|no) timezone component"
)

DATE_TIME_REASON = "must be an RFC 3339 date-time with a timezone, e.g. 2019-08-24T14:15:22Z"
_TYPE_RULES: dict[str, tuple[InvalidRule, str]] = {
    "str": ("is_string", "must be a string"),
    "int": ("is_integer", "must be an integer"),
    "float": ("is_number", "must be a number"),
    "bool": ("is_boolean", "must be a boolean"),
    "array": ("is_array", "must be an array"),
    "object": ("is_object", "must be an object"),
    "uuid": ("is_uuid", "must be a valid UUID"),
    "datetime": ("is_date_time", DATE_TIME_REASON),
    "date": ("is_date_time", "must be an RFC 3339 date"),
    "time": ("is_date_time", "must be an RFC 3339 time"),
    "null": ("is_null", "must be null"),
}
_UNITS = {"str": "characters", "bytes": "bytes", "array": "items", "object": "properties"}


def _parse_path(path: str) -> list[Segment]:
    segments: list[Segment] = []
    for match in _SEGMENT.finditer(path):
        if match["name"] is not None:
            segments.append(match["name"])
        elif match["index"] is not None:
            segments.append(int(match["index"]))
        else:
            segments.append(_ENTRY)
    return segments


def _unwrap(tp: Any) -> Any:
    """The type without ``Annotated``, ``| None`` and ``| msgspec.UnsetType``."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
            continue
        if origin in (Union, types.UnionType):
            arms = [arm for arm in get_args(tp) if arm not in (type(None), msgspec.UnsetType)]
            if len(arms) == 1:
                tp = arms[0]
                continue
        return tp


def _child_type(tp: Any, segment: Segment, *, map_key: bool = False) -> Any:
    tp = _unwrap(tp)
    origin = get_origin(tp)
    args = get_args(tp)
    if isinstance(segment, str):
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
            for field in msgspec.structs.fields(tp):
                if field.encode_name == segment:
                    return field.type
        return None
    if isinstance(segment, int):
        if origin in (list, set, frozenset) and args:
            return args[0]
        if origin is tuple and args:
            return args[0] if len(args) == 2 and args[1] is Ellipsis else args[min(segment, len(args) - 1)]
        return None
    if origin in (dict, Mapping, MutableMapping) and len(args) == 2:
        return args[0] if map_key else args[1]
    return None


def _fails(value: Any, tp: Any) -> bool:
    try:
        msgspec.json.decode(msgspec.json.encode(value), type=tp)
    except msgspec.ValidationError:
        return True
    return False


def _failing_entry(node: Any, map_type: Any, *, check_key: bool) -> str | None:
    """The first key of ``node`` whose value (or the key itself) does not fit ``map_type``."""
    if not isinstance(node, dict):
        return None
    checked = _child_type(map_type, _ENTRY, map_key=check_key)
    if checked is None:
        return None
    for key, value in node.items():
        if _fails(key if check_key else value, checked):
            return str(key)
    return None


def _locate(segments: list[Segment], root_type: Any, raw: bytes, *, key_error: bool) -> tuple[str, Any]:
    """The field as the client wrote it and the declared type there (None when unknown)."""
    parts: list[str] = []
    tp: Any = root_type
    node: Any = None
    try:
        node = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        node = None
    for segment in segments:
        if isinstance(segment, _MapEntry):
            key = _failing_entry(node, tp, check_key=False)
            if key is None:
                return ".".join(parts).replace(".[", "["), None
            parts.append(key)
            node = node[key]
        elif isinstance(segment, int):
            parts.append(f"[{segment}]")
            node = node[segment] if isinstance(node, list) and segment < len(node) else None
        else:
            parts.append(segment)
            node = node.get(segment) if isinstance(node, dict) else None
        tp = _child_type(tp, segment) if tp is not None else None
    if key_error:
        key = _failing_entry(node, tp, check_key=True)
        if key is not None:
            parts.append(key)
        tp = _child_type(tp, _ENTRY, map_key=True) if tp is not None else None
    return ".".join(parts).replace(".[", "["), tp


def _choices(tp: Any) -> tuple[str, ...]:
    tp = _unwrap(tp)
    if get_origin(tp) is Literal:
        return tuple(str(arg) for arg in get_args(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tuple(str(member.value) for member in tp)
    return ()


def _join(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def _length(kind: str, op: str, n: int, field: str, prefix: str) -> InvalidParameter:
    unit = _UNITS[kind]
    if op == ">=":
        reason = "cannot be blank" if kind == "str" and n == 1 else f"must have at least {n} {unit}"
        rule: InvalidRule = "min_length" if kind in ("str", "bytes") else "min_items"
        return InvalidParameter(field, prefix + reason, rule, "body", minimum=n)
    rule = "max_length" if kind in ("str", "bytes") else "max_items"
    reason = f"must not have more than {n} {unit}"
    return InvalidParameter(field, prefix + reason, rule, "body", maximum=n)


def _bound(op: str, n: str, field: str, prefix: str) -> InvalidParameter:
    words = {">=": "greater than or equal to", ">": "greater than", "<=": "less than or equal to"}
    reason = f"{prefix}must be {words.get(op, 'less than')} {n}"
    if not re.fullmatch(r"-?\d+", n):
        return InvalidParameter(field, reason, "invalid", "body")
    if op.startswith(">"):
        return InvalidParameter(field, reason, "min", "body", minimum=int(n) + (op == ">"))
    return InvalidParameter(field, reason, "max", "body", maximum=int(n) - (op == "<"))


def _wrong_type(expected: str, field: str) -> InvalidParameter:
    if not field:  # the body itself is not an object
        return InvalidParameter("body", "request format is invalid", "is_object", "body")
    arms = [arm for arm in expected.split(" | ") if arm != "null"]
    if len(arms) == 1 and arms[0] in _TYPE_RULES:
        rule, reason = _TYPE_RULES[arms[0]]
        return InvalidParameter(field, reason, rule, "body")
    return InvalidParameter(field, f"must be of type {expected}", "type", "body")


def invalid_parameter_for(message: str, root_type: Any, raw: bytes) -> InvalidParameter:
    """The ``invalid_parameters`` item for msgspec's ``ValidationError`` text ``message``, raised while
    decoding ``raw`` as ``root_type``."""
    key_error = False
    path = ""
    if match := _AT_KEY.fullmatch(message):
        key_error = True
    else:
        match = _AT.fullmatch(message)
    if match:
        message, path = match["message"], match["path"]
    field, tp = _locate(_parse_path(path), root_type, raw, key_error=key_error)
    prefix = "key " if key_error else ""

    if found := _MISSING.fullmatch(message):
        return InvalidParameter(_join(field, found["name"]), "is a required field", "required", "body")
    if found := _UNKNOWN.fullmatch(message):
        return InvalidParameter(
            _join(field, found["name"]), "is not a known property", "unknown_property", "body"
        )
    shown = field or "body"
    if found := _LENGTH.fullmatch(message):
        return _length(found["kind"], found["op"], int(found["n"]), shown, prefix)
    if found := _BOUND.fullmatch(message):
        return _bound(found["op"], found["n"], shown, prefix)
    if found := _PATTERN.fullmatch(message):
        reason = f"{prefix}must match the pattern {found['pattern']}"
        return InvalidParameter(shown, reason, "matches_regex", "body")
    if message == "Invalid UUID":
        return InvalidParameter(shown, prefix + "must be a valid UUID", "is_uuid", "body")
    if _DATE_TIME.fullmatch(message):
        return InvalidParameter(shown, prefix + DATE_TIME_REASON, "is_date_time", "body")
    if _ENUM.fullmatch(message):
        choices = _choices(tp) if tp is not None else ()
        if choices:
            reason = prefix + "is not one of the allowed values"
            return InvalidParameter(shown, reason, "enum", "body", choices=tuple(dict.fromkeys(choices)))
        return InvalidParameter(shown, prefix + "is not one of the allowed values", "invalid", "body")
    if found := _WRONG_TYPE.fullmatch(message):
        return _wrong_type(found["expected"], field)
    # A __post_init__ ValueError/TypeError, or a message this module does not know.
    return InvalidParameter(shown, message or "is invalid", "invalid", "body")
