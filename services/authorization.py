"""Who may do what: the rights tokenledger's own Identity roles confer, how token scopes narrow
them, and the rules that stop anyone from raising rights (their own or others') beyond what they hold.

Rights come only from ``Identity`` roles on the deployment's organization (its fixed id, shown by
``GET /v3/organizations/me``); roles on other entity types are data for the services that own those
entities. A token's ``scopes`` are the rights it may use, a subset of its account's.
"""

import enum
from collections.abc import Iterable, Sequence
from typing import Protocol

from services.commands import Forbidden, Invalid
from services.roles.assignment import RoleAssignment
from services.roles.catalogue import IDENTITY_ENTITY_TYPE


class Right(enum.StrEnum):
    READ = "identity:read"
    WRITE = "identity:write"
    AUDIT = "audit:read"
    INTROSPECT = "tokens:introspect"


SCOPES = tuple(right.value for right in Right)

ROLE_RIGHTS: dict[str, frozenset[Right]] = {
    "Admin": frozenset(Right),
    "Viewer": frozenset({Right.READ}),
    "Auditor": frozenset({Right.AUDIT}),
    "Introspector": frozenset({Right.INTROSPECT}),
}


class Grant(Protocol):
    @property
    def role_name(self) -> str: ...
    @property
    def entity_id(self) -> str: ...
    @property
    def entity_type_name(self) -> str: ...


class Actor(Protocol):
    """What authorisation needs to know of an authenticated caller (a verified token)."""

    @property
    def account_id(self) -> str: ...
    @property
    def scopes(self) -> Sequence[str] | None: ...
    @property
    def roles(self) -> Sequence[Grant]: ...


def _identity_roles(grants: Iterable[Grant], organization_id: str) -> set[str]:
    return {
        g.role_name
        for g in grants
        if g.entity_type_name == IDENTITY_ENTITY_TYPE and g.entity_id == organization_id
    }


def rights_of(actor: Actor, organization_id: str) -> frozenset[Right]:
    rights: set[Right] = set()
    for role in _identity_roles(actor.roles, organization_id):
        rights |= ROLE_RIGHTS.get(role, frozenset())
    if actor.scopes is not None:
        rights &= {Right(scope) for scope in actor.scopes if scope in SCOPES}
    return frozenset(rights)


def require(actor: Actor, organization_id: str, right: Right) -> None:
    if right not in rights_of(actor, organization_id):
        raise Forbidden(f"this action needs the {right.value} right")


def check_scopes(scopes: Sequence[str] | None) -> None:
    if scopes is None:
        return
    for n, scope in enumerate(scopes):
        if scope not in SCOPES:
            raise Invalid(f"scopes[{n}]", f"must be one of {', '.join(SCOPES)}", "enum")
    if len(set(scopes)) != len(scopes):
        raise Invalid("scopes", "must not repeat a scope")


def check_can_grant(actor: Actor, organization_id: str, grant: RoleAssignment) -> None:
    """Identity roles carry rights here, so granting one needs holding it (Kubernetes' escalation
    rule): the actor must have that role on the organization and be able to use all it confers."""
    if grant.entity_type_name != IDENTITY_ENTITY_TYPE:
        return
    if grant.entity_id != organization_id:
        raise Invalid("entity_id", f"Identity roles are granted on the organization {organization_id}")
    conferred = ROLE_RIGHTS.get(grant.role_name, frozenset())
    held = grant.role_name in _identity_roles(actor.roles, organization_id)
    if not held or not conferred <= rights_of(actor, organization_id):
        raise Forbidden(f"you cannot grant the Identity role {grant.role_name!r}: you do not hold it")


def check_token_scopes(actor: Actor, account_id: str, scopes: Sequence[str] | None) -> None:
    """A token may create a token for its own account only within its own scopes, so no token
    can mint a wider one for itself."""
    if account_id != actor.account_id or actor.scopes is None:
        return
    if scopes is None or not set(scopes) <= set(actor.scopes):
        raise Forbidden("a scoped token can only create tokens for its own account within its own scopes")


def check_not_self_membership(actor: Actor, account_id: str) -> None:
    if account_id == actor.account_id:
        raise Forbidden("an account cannot change its own team memberships")
