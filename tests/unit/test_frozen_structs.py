"""Frozen Structs hold no mutable field: every field of every frozen msgspec Struct of the log
(``events``), of the command side (commands, write models, outcomes, ports) and of what a verified
caller is (``services.auth.principal``) is typed with immutable values only: tuples, frozensets and
``FrozenMap`` rather than lists, sets and dicts (or the abstract ``Sequence``/``Mapping``, which let
a list or a dict in). A field added with a mutable type fails here, naming it."""

import collections.abc
import copy
import importlib
import pickle
import pkgutil
import types
import typing
from typing import Any

import msgspec
import pytest

from events import FrozenMap, event_type, registered_tags
from events.frozen import dec_hook
from services.dispatch import HANDLERS

PACKAGES = ("events", "services.accounts", "services.teams", "services.tokens", "services.roles")
MODULES = (
    "services.authorization",
    "services.auth.principal",
    "services.commands",
    "services.dependencies",
    "services.dispatch",
    "services.idempotency_claims",
    "services.lookups",
    "services.policy",
    "services.ports",
    "services.role_holders",
)
MUTABLE = (
    list,
    dict,
    set,
    bytearray,
    collections.abc.Sequence,
    collections.abc.MutableSequence,
    collections.abc.Mapping,
    collections.abc.MutableMapping,
    collections.abc.Set,
    collections.abc.MutableSet,
    collections.abc.Collection,
    collections.abc.Iterable,
)


def _modules() -> list[types.ModuleType]:
    found = [importlib.import_module(name) for name in MODULES]
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        found.append(package)
        for info in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            found.append(importlib.import_module(info.name))
    return found


def _frozen_structs() -> set[type[msgspec.Struct]]:
    structs: set[type[msgspec.Struct]] = {event_type(tag) for tag in registered_tags()}
    structs |= set(HANDLERS)
    for module in _modules():
        for value in vars(module).values():
            struct = isinstance(value, type) and issubclass(value, msgspec.Struct)
            if struct and value.__module__ == module.__name__:
                structs.add(value)
    return {cls for cls in structs if cls.__struct_config__.frozen}


def _mutable_parts(hint: Any) -> list[str]:
    """The mutable types ``hint`` admits, through unions and generics (a Struct field's own
    fields are checked as that Struct's)."""
    origin = typing.get_origin(hint)
    if origin is typing.ClassVar:
        return []
    base = origin or hint
    immutable = (FrozenMap, tuple, frozenset, str, bytes)
    mutable = isinstance(base, type) and issubclass(base, MUTABLE) and not issubclass(base, immutable)
    found = [base.__name__] if mutable else []
    for arg in typing.get_args(hint):
        if arg is not Ellipsis:
            found += _mutable_parts(arg)
    return found


STRUCTS = sorted(_frozen_structs(), key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


def test_the_walk_sees_events_commands_and_models() -> None:
    names = {cls.__name__ for cls in STRUCTS}
    assert {"TeamCreated", "TokenIssued", "IssueToken", "AssignRole", "Account", "Team", "Token"} <= names
    assert {"Principal", "RoleAssignment", "StreamAppend", "Outcome", "Recorded"} <= names


@pytest.mark.parametrize("cls", STRUCTS, ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_frozen_struct_fields_are_immutable(cls: type[msgspec.Struct]) -> None:
    hints = typing.get_type_hints(cls)
    mutable = {name: parts for name in cls.__struct_fields__ if (parts := _mutable_parts(hints[name]))}
    assert mutable == {}, f"{cls.__qualname__} has mutable fields"


def test_a_frozen_map_refuses_every_change() -> None:
    labels: FrozenMap[str, str] = FrozenMap({"env": "prod"})
    changes = [
        lambda: labels.__setitem__("env", "dev"),
        lambda: labels.__delitem__("env"),
        lambda: labels.update(env="dev"),
        lambda: labels.setdefault("team", "x"),
        lambda: labels.pop("env"),
        labels.popitem,
        labels.clear,
    ]
    for change in changes:
        with pytest.raises(TypeError):
            change()
    assert labels == {"env": "prod"} and hash(labels) == hash(FrozenMap({"env": "prod"}))
    for copied in (copy.copy(labels), copy.deepcopy(labels), pickle.loads(pickle.dumps(labels))):
        assert type(copied) is FrozenMap and copied == labels


def test_a_frozen_map_field_keeps_its_json_object_and_validates_what_it_decodes() -> None:
    event = event_type("team.created")
    decoded = msgspec.json.decode(
        b'{"type":"team.created","team_id":"t","name":"n","labels":{"env":"prod"}}',
        type=event,
        dec_hook=dec_hook,
    )
    assert isinstance(decoded.labels, FrozenMap) and decoded.labels == {"env": "prod"}
    assert msgspec.json.decode(msgspec.json.encode(decoded))["labels"] == {"env": "prod"}
