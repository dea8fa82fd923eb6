"""A role assignment as held by an account or a team (a role holder), how a holder's roles evolve
with its events, and the checks every assignment passes."""

from collections.abc import Mapping

import msgspec

from events import FrozenMap
from events.accounts import AccountRoleAssigned
from events.teams import TeamRoleAssigned
from services.commands import Conflict, Invalid
from services.roles.catalogue import RoleCatalogue

REGIONS = ("us", "eu", "au", "me", "in", "sg", "*")


class Role(msgspec.Struct, frozen=True, kw_only=True):
    """A role to assign, as a request names it (it gets its assignment id when assigned)."""

    role_name: str
    entity_id: str
    entity_type_name: str
    entity_region: str


class RoleAssignment(msgspec.Struct, frozen=True, kw_only=True):
    assignment_id: str
    role_name: str
    entity_id: str
    entity_type_name: str
    entity_region: str

    def same_grant(self, other: "RoleAssignment") -> bool:
        return (self.role_name, self.entity_id, self.entity_type_name, self.entity_region) == (
            other.role_name,
            other.entity_id,
            other.entity_type_name,
            other.entity_region,
        )


Roles = FrozenMap[str, RoleAssignment]
"""A holder's role assignments by assignment id."""


def with_assigned(roles: Roles, event: AccountRoleAssigned | TeamRoleAssigned) -> Roles:
    """The holder's roles after ``event`` (``account.role_assigned`` or ``team.role_assigned``)."""
    grant = RoleAssignment(
        assignment_id=event.assignment_id,
        role_name=event.role_name,
        entity_id=event.entity_id,
        entity_type_name=event.entity_type_name,
        entity_region=event.entity_region,
    )
    return FrozenMap({**roles, grant.assignment_id: grant})


def without_assigned(roles: Roles, assignment_id: str) -> Roles:
    """The holder's roles after the assignment ``assignment_id`` ends."""
    return FrozenMap({key: grant for key, grant in roles.items() if key != assignment_id})


def check_in_catalogue(catalogue: RoleCatalogue, wanted: RoleAssignment) -> None:
    """Refuses roles outside the catalogue and unknown regions (a 400, checked before anything else:
    an unknown role is bad input, not a right the caller lacks)."""
    if wanted.entity_region not in REGIONS:
        raise Invalid("entity_region", f"must be one of {', '.join(REGIONS)}", "enum", REGIONS)
    if not catalogue.allows(wanted.entity_type_name, wanted.role_name):
        entity_types = catalogue.entity_types()
        if wanted.entity_type_name not in entity_types:
            reason = "is not an entity type of the role catalogue"
            raise Invalid("entity_type_name", reason, "enum", entity_types)
        roles = [name for name in catalogue.role_names() if catalogue.allows(wanted.entity_type_name, name)]
        raise Invalid("role_name", f"is not a role of {wanted.entity_type_name!r}", "enum", roles)


def check_new_assignment(
    catalogue: RoleCatalogue, held: Mapping[str, RoleAssignment], wanted: RoleAssignment
) -> None:
    """Refuses roles outside the catalogue and duplicates of an assignment already held."""
    check_in_catalogue(catalogue, wanted)
    if any(existing.same_grant(wanted) for existing in held.values()):
        raise Conflict("role is already assigned")
