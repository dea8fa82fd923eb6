"""Who may do what: the rights tokenledger's own Identity roles confer, how token scopes narrow
them, and the one rule that stops anyone from raising rights (their own or others') beyond what
they hold.

Rights come only from ``Identity`` roles on the deployment's organization (its fixed id, shown by
``GET /v3/organizations/me``): one per resource family and kind of access (``accounts:read``,
``tokens:write``...), which a token's ``scopes`` narrow, by name or through the aliases of the first
releases (``identity:read``, ``identity:write``). Roles on other entity types (Control Planes,
APIs...) are enforced by the services that own those entities, which learn them from
introspection: so they are capabilities of every token of the account too, and they are guarded by
the same rule.

**The rule (cover).** A caller may obtain a credential, or make someone hold a role, only within
what it can do itself, now:

* a credential's *capabilities* are its account's Identity rights (roles held directly and through
  teams) narrowed by the token's ``scopes``; the Identity roles it may grant (those held whose
  rights all survive the scopes); and every role its account holds on other entity types (scopes
  name only tokenledger's own rights, so they do not narrow those);
* a caller *covers* a set of capabilities when its own token's capabilities include every one of
  its Identity rights and grantable Identity roles, and, for each role on another entity type, the
  caller holds the same role name on the same entity type (aliases folded) for the same entity id
  or for ``*`` (every entity of the type), in the same region or in region ``*``;
* the *organization admin* (the konnect-managed account that only bootstrap makes, as Konnect's
  Organization Admin team) covers every role on every other entity type; a token of it is covered
  only by the organization admin;
* issuing or rotating a token of account X needs covering X's capabilities narrowed by that token's
  scopes (``check_can_obtain``); granting a role to an account or a team, and adding an account to a
  team (which grants it the team's roles) needs covering those roles: for an Identity role, holding
  that very role with all its rights in scope (``check_can_grant``).

A refusal is ``Forbidden`` naming what is missing. A token whose scopes name none of the rights its
account holds is refused at issue (``check_scopes_serve``): it could only ever be refused.
``SYSTEM`` is tokenledger itself (bootstrap, the scheduler): it is not a caller and is never
checked; no HTTP request can act as it.
"""

import enum
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Protocol

import msgspec

from services.commands import Forbidden, Invalid
from services.roles.catalogue import ENTITY_TYPE_ALIASES, IDENTITY_ENTITY_TYPE

EVERY = "*"
"""The entity id or region that stands for all of them."""


class Right(enum.StrEnum):
    """tokenledger's own rights, one per resource family and kind of access (docs/scopes.md names
    the operations each allows). A token's ``scopes`` name rights, or the aliases below."""

    ACCOUNTS_READ = "accounts:read"
    ACCOUNTS_WRITE = "accounts:write"
    TOKENS_READ = "tokens:read"
    TOKENS_WRITE = "tokens:write"
    ROLES_READ = "roles:read"
    ROLES_WRITE = "roles:write"
    TEAMS_READ = "teams:read"
    TEAMS_WRITE = "teams:write"
    AUDIT = "audit:read"
    INTROSPECT = "tokens:introspect"
    METRICS = "metrics:read"


READ_RIGHTS = frozenset({Right.ACCOUNTS_READ, Right.TOKENS_READ, Right.ROLES_READ, Right.TEAMS_READ})
WRITE_RIGHTS = frozenset({Right.ACCOUNTS_WRITE, Right.TOKENS_WRITE, Right.ROLES_WRITE, Right.TEAMS_WRITE})
ALIASES: Mapping[str, frozenset[Right]] = MappingProxyType(
    {"identity:read": READ_RIGHTS, "identity:write": WRITE_RIGHTS}
)
"""The scopes of the first releases, each the rights of every resource family it spanned."""
SCOPES = (*(right.value for right in Right), *ALIASES)
"""Every name a token's ``scopes`` may hold."""

ROLE_RIGHTS: Mapping[str, frozenset[Right]] = MappingProxyType(
    {
        "Admin": frozenset(Right),
        "Viewer": READ_RIGHTS,
        "Auditor": frozenset({Right.AUDIT}),
        "Introspector": frozenset({Right.INTROSPECT}),
        "Metrics": frozenset({Right.METRICS}),
    }
)


def scope_rights(scopes: Iterable[str]) -> frozenset[Right]:
    """The rights ``scopes`` name (aliases expanded; names that are neither are ignored)."""
    rights: set[Right] = set()
    for scope in scopes:
        if scope in ALIASES:
            rights |= ALIASES[scope]
        elif scope in SCOPES:
            rights.add(Right(scope))
    return frozenset(rights)


def describe(rights: Iterable[Right]) -> list[str]:
    """``rights`` named for a person: a whole alias's rights by the alias, the others one by one."""
    remaining = set(rights)
    names = []
    for alias, group in ALIASES.items():
        if group <= remaining:
            names.append(alias)
            remaining -= group
    return names + [right.value for right in Right if right in remaining]


class Grant(Protocol):
    @property
    def role_name(self) -> str: ...
    @property
    def entity_id(self) -> str: ...
    @property
    def entity_type_name(self) -> str: ...
    @property
    def entity_region(self) -> str: ...


class Actor(Protocol):
    """What authorisation needs to know of an authenticated caller (a verified token)."""

    @property
    def account_id(self) -> str: ...
    @property
    def scopes(self) -> Sequence[str] | None: ...
    @property
    def roles(self) -> Sequence[Grant]: ...
    @property
    def organization_admin(self) -> bool: ...


class SystemActor(msgspec.Struct, frozen=True):
    """tokenledger acting on its own behalf (bootstrap, the scheduler): exempt from the rule."""

    name: str


SYSTEM = SystemActor("system")


class FederatedActor(msgspec.Struct, frozen=True, kw_only=True):
    """An external identity exchanging its verified id-token (``POST /v3/oauth/token``) through
    one federated credential of one account. It holds no right and no role: the dispatcher lets it
    send only the exchange, for that credential, and every other check refuses it."""

    account_id: str
    credential_id: str
    issuer: str
    subject: str
    scopes: tuple[str, ...] = ()
    roles: tuple[Grant, ...] = ()
    organization_admin: bool = False


class EntityRole(msgspec.Struct, frozen=True, order=True):
    """A role on an entity type other than Identity, as a capability (entity type canonicalised)."""

    entity_type_name: str
    role_name: str
    entity_id: str
    entity_region: str

    def covers(self, other: "EntityRole") -> bool:
        return (
            self.entity_type_name == other.entity_type_name
            and self.role_name == other.role_name
            and self.entity_id in (EVERY, other.entity_id)
            and self.entity_region in (EVERY, other.entity_region)
        )

    def describe(self) -> str:
        return f"{self.role_name} on {self.entity_type_name} {self.entity_id} (region {self.entity_region})"


class Capabilities(msgspec.Struct, frozen=True):
    """What a credential can do: tokenledger's own rights and its roles on other entity types."""

    rights: frozenset[Right]
    identity_roles: frozenset[str]
    """The Identity roles held whose rights all survive the scopes: the ones it may grant."""
    entity_roles: frozenset[EntityRole]
    organization_admin: bool = False
    """Every role on every other entity type."""

    def missing_from(self, held: "Capabilities") -> list[str]:
        """What of these capabilities ``held`` does not cover, each named for a person."""
        missing = describe(self.rights - held.rights)
        missing += [f"the Identity role {role}" for role in sorted(self.identity_roles - held.identity_roles)]
        if held.organization_admin:
            return missing
        if self.organization_admin:
            missing.append("every role of the organization admin")
        for wanted in sorted(self.entity_roles):
            if not any(have.covers(wanted) for have in held.entity_roles):
                missing.append(wanted.describe())
        return missing


def _identity_roles(grants: Iterable[Grant], organization_id: str) -> set[str]:
    return {
        g.role_name
        for g in grants
        if g.entity_type_name == IDENTITY_ENTITY_TYPE and g.entity_id == organization_id
    }


def _entity_role(grant: Grant) -> EntityRole:
    entity_type = ENTITY_TYPE_ALIASES.get(grant.entity_type_name, grant.entity_type_name)
    return EntityRole(entity_type, grant.role_name, grant.entity_id, grant.entity_region)


def capabilities(
    grants: Iterable[Grant],
    organization_id: str,
    scopes: Sequence[str] | None,
    organization_admin: bool = False,
) -> Capabilities:
    """The capabilities of a token with ``scopes`` (None: unscoped) whose account holds ``grants``
    (and is the organization admin, or not)."""
    grants = list(grants)
    held = _identity_roles(grants, organization_id)
    rights: set[Right] = set()
    for role in held:
        rights |= ROLE_RIGHTS.get(role, frozenset())
    if scopes is not None:
        rights &= scope_rights(scopes)
    grantable = frozenset(role for role in held if ROLE_RIGHTS.get(role, frozenset()) <= rights)
    entity_roles = frozenset(_entity_role(g) for g in grants if g.entity_type_name != IDENTITY_ENTITY_TYPE)
    return Capabilities(frozenset(rights), grantable, entity_roles, organization_admin)


def capabilities_of(actor: Actor, organization_id: str) -> Capabilities:
    return capabilities(actor.roles, organization_id, actor.scopes, actor.organization_admin)


def rights_of(actor: Actor, organization_id: str) -> frozenset[Right]:
    return capabilities_of(actor, organization_id).rights


class MissingRight(Forbidden):
    """The caller's token does not carry a right the action needs: because its scopes exclude it
    (``out_of_scope``: its account holds the right) or because its account does not hold it at all
    (``no_right``), as the usage log records it."""

    def __init__(self, right: Right, *, out_of_scope: bool) -> None:
        why = "this token's scopes exclude it" if out_of_scope else "the system account does not hold it"
        super().__init__(f"this action needs the {right.value} right: {why}")
        self.right = right
        self.out_of_scope = out_of_scope


def require(actor: Actor, organization_id: str, right: Right) -> None:
    if right in rights_of(actor, organization_id):
        return
    held = capabilities(actor.roles, organization_id, None, actor.organization_admin).rights
    raise MissingRight(right, out_of_scope=right in held)


def check_scopes(scopes: Sequence[str] | None) -> None:
    if scopes is None:
        return
    for n, scope in enumerate(scopes):
        if scope not in SCOPES:
            raise Invalid(f"scopes[{n}]", f"must be one of {', '.join(SCOPES)}", "enum", SCOPES)
    if len(set(scopes)) != len(scopes):
        raise Invalid("scopes", "must not repeat a scope")


def _refuse(what: str, missing: Sequence[str]) -> Forbidden:
    return Forbidden(f"{what}: it would carry rights you do not hold: {'; '.join(missing)}")


class Holdings(Protocol):
    """What an account holds (``services.holdings``)."""

    @property
    def grants(self) -> Sequence[Grant]: ...
    @property
    def organization_admin(self) -> bool: ...


def check_scopes_serve(holdings: Holdings, organization_id: str, scopes: Sequence[str] | None) -> None:
    """A token limited to scopes must be able to use one of them now: scopes none of whose rights
    the account holds today (directly or through its teams) are refused, rather than issuing a token
    that is refused everything it names. Unscoped tokens are not checked (they follow the
    account's roles, which may come later), nor ``[]``: a token for the account's roles on other
    entity types only, which scopes do not narrow."""
    if not scopes:
        return
    held = capabilities(holdings.grants, organization_id, None, holdings.organization_admin).rights
    if held & scope_rights(scopes):
        return
    has = f"its roles confer only {', '.join(describe(held))}" if held else "it holds no Identity role"
    raise Invalid("scopes", f"grant nothing this system account can do today: {has}")


def check_can_obtain(
    actor: Actor | SystemActor, organization_id: str, holdings: Holdings, scopes: Sequence[str] | None
) -> None:
    """The caller may obtain a secret of a token with ``scopes`` of an account with ``holdings``
    (roles held directly and through teams) only if it covers that token's capabilities."""
    if isinstance(actor, SystemActor):
        return
    wanted = capabilities(holdings.grants, organization_id, scopes, holdings.organization_admin)
    missing = wanted.missing_from(capabilities_of(actor, organization_id))
    if missing:
        raise _refuse("you cannot obtain a token of this system account", missing)


def check_can_grant(
    actor: Actor | SystemActor, organization_id: str, grants: Iterable[Grant], fields: Sequence[str] = ()
) -> None:
    """Granting roles (directly, or by adding a member to a team holding them) needs covering them;
    an Identity role must moreover be held by the caller itself (Kubernetes' escalation rule).
    ``fields`` names where each grant was in the request (``assigned_roles[0]``), for a refusal."""
    if isinstance(actor, SystemActor):
        return
    grants = list(grants)
    for n, grant in enumerate(grants):
        if grant.entity_type_name == IDENTITY_ENTITY_TYPE and grant.entity_id != organization_id:
            field = f"{fields[n]}.entity_id" if fields else "entity_id"
            raise Invalid(field, f"Identity roles are granted on the organization {organization_id}")
    wanted = capabilities(grants, organization_id, None)
    missing = wanted.missing_from(capabilities_of(actor, organization_id))
    if missing:
        raise _refuse("you cannot grant these roles", missing)


def check_not_self_membership(actor: Actor | SystemActor, account_id: str) -> None:
    if not isinstance(actor, SystemActor) and account_id == actor.account_id:
        raise Forbidden("an account cannot change its own team memberships")
