"""The catalogue of assignable roles, by entity type.

The default is Konnect's predefined roles (``predefined_roles.json``, in the exact shape of Konnect's
``GET /roles``), with tokenledger's own rights added under the ``Identity`` entity type: Admin,
Viewer, Auditor, Introspector and Metrics; completed by ``assignable_roles.json`` (same shape): the
entity types and roles that Konnect's ``AssignRole`` request accepts but its ``/roles`` response does
not list (APIs, Portals, Service Hub, Networks... and the Control Planes roles its roles reference
adds), each role placed on the entity type Kong's teams-and-roles reference gives it, and ``Control
Plane Groups`` with the one role Kong's system-accounts how-to assigns on it (``Viewer``). Only role
names that Konnect's ``AssignRole`` enum allows are there. ``TOKENLEDGER_ROLE_CATALOGUE`` may name a
JSON file of the same shape to replace the default; the Identity roles are always kept, since the
service's own authorisation depends on them.
"""

import json
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec

IDENTITY_ENTITY_TYPE = "Identity"
IDENTITY_ROLES = ("Admin", "Viewer", "Auditor", "Introspector", "Metrics")

# Konnect's AssignRole request enum spells this entity type differently from its /roles catalogue;
# clients send either, so both are accepted and stored as sent.
ENTITY_TYPE_ALIASES = {"Mesh Control Planes": "Mesh Control Plane"}


class CatalogueError(ValueError):
    """The configured catalogue file is not usable."""


class RoleCatalogue(msgspec.Struct, frozen=True):
    document: str
    """The ``GET /v3/roles`` body, as JSON text (text, so that it cannot change)."""
    allowed: frozenset[tuple[str, str]]
    """(entity type display name, role name) pairs that may be assigned."""

    def entity_types(self) -> list[str]:
        return sorted({entity_type for entity_type, _ in self.allowed})

    def role_names(self) -> list[str]:
        return sorted({role for _, role in self.allowed})

    def allows(self, entity_type_name: str, role_name: str) -> bool:
        canonical = ENTITY_TYPE_ALIASES.get(entity_type_name, entity_type_name)
        return (canonical, role_name) in self.allowed


def _from_document(document: dict[str, Any]) -> RoleCatalogue:
    allowed = set()
    try:
        for entity in document.values():
            for role in entity["roles"].values():
                allowed.add((str(entity["name"]), str(role["name"])))
    except (AttributeError, KeyError, TypeError) as error:
        raise CatalogueError(f"role catalogue is not in the /roles shape: {error!r}") from None
    return RoleCatalogue(document=json.dumps(document), allowed=frozenset(allowed))


def _packaged(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((resources.files("services.roles") / name).read_text())
    return document


def _completed(document: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """``document`` with ``more``'s entity types added and its roles added to the types both have."""
    for key, entity in more.items():
        known = document.setdefault(key, {"name": entity["name"], "roles": {}})
        if known["name"] != entity["name"] or set(known["roles"]) & set(entity["roles"]):
            raise CatalogueError(f"entity type {key!r} is described twice, differently")
        known["roles"].update(entity["roles"])
    return document


def default_document() -> dict[str, Any]:
    return _completed(_packaged("predefined_roles.json"), _packaged("assignable_roles.json"))


def load_catalogue(path: Path | None) -> RoleCatalogue:
    document = default_document()
    if path is not None:
        try:
            custom = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise CatalogueError(f"cannot read role catalogue {path}: {error}") from None
        if not isinstance(custom, dict):
            raise CatalogueError(f"role catalogue {path} must be a JSON object")
        custom["identity"] = document["identity"]
        document = custom
    return _from_document(document)
