"""Federated credentials of a system account: the rules of what one may trust, the decisions that
create, change and delete them (pure: state, values -> events), the GitHub Actions preset, and the
matching of an id-token's claims against a credential (the exchange's last check).

A credential names an OIDC ``issuer`` (an https URL, compared exactly), the ``audiences`` the id-token
must be for (by default the deployment's URI), its ``subject`` (exact, or a glob: ``*`` any run of
characters, ``?`` one character), ``conditions`` on other claims (each ``equals`` / ``one_of`` /
``glob``; all must hold: no expression is ever evaluated), ``required_claims`` that must be present,
and the longest lifetime of a token it obtains (by default one hour, never past the deployment's
maximum). Claims the exchange checks itself (``iss``, ``aud``, ``exp``...) cannot be conditions.
"""

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import msgspec

from events import Event
from events.federation import (
    ClaimCondition,
    FederatedCredentialCreated,
    FederatedCredentialDeleted,
    FederatedCredentialUpdated,
)
from services.commands import Conflict, Invalid, NotFound
from services.names import check_new_name
from services.policy import FederationPolicy

GITHUB_ACTIONS = "github-actions"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
DEFAULT_LIFETIME_SECONDS = 3600
MIN_LIFETIME_SECONDS = 60
MAX_TEXT = 255
MAX_ITEMS = 16
RESERVED_CLAIMS = frozenset({"iss", "aud", "exp", "nbf", "iat", "jti", "sub", "azp", "nonce"})
_CLAIM_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


class FederatedCredential(msgspec.Struct, frozen=True, kw_only=True):
    credential_id: str
    name: str
    issuer: str
    audiences: tuple[str, ...]
    subject: str
    conditions: tuple[ClaimCondition, ...] = ()
    required_claims: tuple[str, ...] = ()
    max_token_lifetime_seconds: int
    preset: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Definition(msgspec.Struct, frozen=True, kw_only=True):
    """What a caller asks a credential to trust; None: the default (audiences, lifetime)."""

    name: str
    issuer: str
    subject: str
    audiences: tuple[str, ...] | None = None
    conditions: tuple[ClaimCondition, ...] = ()
    required_claims: tuple[str, ...] = ()
    max_token_lifetime_seconds: int | None = None
    preset: str | None = None


Credentials = Mapping[str, FederatedCredential]


def evolve(credentials: Credentials, event: Event, at: datetime) -> dict[str, FederatedCredential] | None:
    """The account's credentials after ``event``; None when ``event`` is not about them."""
    match event:
        case FederatedCredentialCreated() | FederatedCredentialUpdated():
            earlier = credentials.get(event.credential_id)
            fields = {f: getattr(event, f) for f in _DEFINITION_FIELDS}
            created = at if earlier is None else earlier.created_at
            return {
                **credentials,
                event.credential_id: FederatedCredential(
                    credential_id=event.credential_id, created_at=created, updated_at=at, **fields
                ),
            }
        case FederatedCredentialDeleted():
            return {k: v for k, v in credentials.items() if k != event.credential_id}
    return None


_DEFINITION_FIELDS = (
    "name",
    "issuer",
    "audiences",
    "subject",
    "conditions",
    "required_claims",
    "max_token_lifetime_seconds",
    "preset",
)


def github_actions(
    name: str, repository: str, repository_owner_id: str, subject: str | None, **rest: Any
) -> Definition:
    """The GitHub Actions preset: GitHub's issuer; the subject of any run of ``repository`` unless
    narrowed (``repo:acme/deploy:ref:refs/heads/main``); the repository and its owner's immutable
    id required and matched (an owner's name can be taken over, its id cannot)."""
    _text("repository", repository)
    if not re.fullmatch(r"[0-9]{1,20}", repository_owner_id):
        raise Invalid("repository_owner_id", "must be the owner's numeric id")
    conditions = (
        ClaimCondition(claim="repository", operator="equals", values=(repository,)),
        ClaimCondition(claim="repository_owner_id", operator="equals", values=(repository_owner_id,)),
    )
    return Definition(
        name=name,
        issuer=GITHUB_ISSUER,
        subject=subject or f"repo:{repository}:*",
        conditions=conditions,
        required_claims=("repository", "repository_owner_id"),
        preset=GITHUB_ACTIONS,
        **rest,
    )


def _text(field: str, value: str) -> None:
    if not 1 <= len(value) <= MAX_TEXT:
        raise Invalid(field, f"must be 1 to {MAX_TEXT} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise Invalid(field, "must not hold control characters")


def check_issuer(issuer: str) -> None:
    _text("issuer", issuer)
    try:
        parts = urlsplit(issuer)
    except ValueError:
        raise Invalid("issuer", "must be an https URL") from None
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment or parts.username:
        raise Invalid("issuer", "must be an https URL with a host, and no query, fragment or user")


def _check_claim_name(field: str, claim: str) -> None:
    if not _CLAIM_NAME.fullmatch(claim):
        raise Invalid(field, "must be 1 to 64 of A-Z a-z 0-9 _ . : -")
    if claim in RESERVED_CLAIMS:
        raise Invalid(field, f"{claim} is checked by the exchange itself")


def _check_conditions(conditions: Sequence[ClaimCondition]) -> None:
    if len(conditions) > MAX_ITEMS:
        raise Invalid("conditions", f"at most {MAX_ITEMS}")
    for n, condition in enumerate(conditions):
        field = f"conditions[{n}]"
        _check_claim_name(f"{field}.claim", condition.claim)
        single = condition.operator in ("equals", "glob")
        if single and len(condition.values) != 1:
            raise Invalid(f"{field}.values", f"{condition.operator} takes exactly one value")
        if not 1 <= len(condition.values) <= MAX_ITEMS:
            raise Invalid(f"{field}.values", f"1 to {MAX_ITEMS} values")
        for m, value in enumerate(condition.values):
            _text(f"{field}.values[{m}]", value)


def _lifetime(policy: FederationPolicy, seconds: int | None) -> int:
    ceiling = int(policy.max_lifetime.total_seconds())
    if seconds is None:
        return min(DEFAULT_LIFETIME_SECONDS, ceiling)
    if not MIN_LIFETIME_SECONDS <= seconds <= ceiling:
        raise Invalid("max_token_lifetime", f"must be {MIN_LIFETIME_SECONDS} to {ceiling} seconds")
    return seconds


def _checked(policy: FederationPolicy, definition: Definition) -> dict[str, Any]:
    """The event fields of ``definition``, every rule checked, defaults filled."""
    check_new_name(definition.name)
    _text("name", definition.name)
    check_issuer(definition.issuer)
    _text("subject", definition.subject)
    audiences = definition.audiences if definition.audiences is not None else (policy.audience,)
    if not 1 <= len(audiences) <= MAX_ITEMS:
        raise Invalid("audiences", f"1 to {MAX_ITEMS} audiences")
    for n, audience in enumerate(audiences):
        _text(f"audiences[{n}]", audience)
    _check_conditions(definition.conditions)
    if len(definition.required_claims) > MAX_ITEMS:
        raise Invalid("required_claims", f"at most {MAX_ITEMS}")
    for n, claim in enumerate(definition.required_claims):
        _check_claim_name(f"required_claims[{n}]", claim)
    return {
        "name": definition.name,
        "issuer": definition.issuer,
        "audiences": tuple(dict.fromkeys(audiences)),
        "subject": definition.subject,
        "conditions": definition.conditions,
        "required_claims": tuple(dict.fromkeys(definition.required_claims)),
        "max_token_lifetime_seconds": _lifetime(policy, definition.max_token_lifetime_seconds),
        "preset": definition.preset,
    }


def _name_taken(credentials: Credentials, name: str, other_than: str | None = None) -> None:
    if any(c.name == name and c.credential_id != other_than for c in credentials.values()):
        raise Conflict("a federated credential with this name already exists for this system account")


def require(credentials: Credentials, credential_id: str) -> FederatedCredential:
    found = credentials.get(credential_id)
    if found is None:
        raise NotFound("federated credential not found")
    return found


def create(
    policy: FederationPolicy,
    account_id: str,
    credentials: Credentials,
    credential_id: str,
    definition: Definition,
) -> list[Event]:
    fields = _checked(policy, definition)
    _name_taken(credentials, fields["name"])
    if len(credentials) >= MAX_ITEMS:
        raise Conflict(f"a system account has at most {MAX_ITEMS} federated credentials")
    return [FederatedCredentialCreated(account_id=account_id, credential_id=credential_id, **fields)]


def update(
    policy: FederationPolicy,
    account_id: str,
    credentials: Credentials,
    credential_id: str,
    changes: Mapping[str, Any],
) -> list[Event]:
    """``changes`` holds the fields a caller sends (those absent keep their value); nothing when it
    changes nothing."""
    current = require(credentials, credential_id)
    kept = {f: getattr(current, f) for f in _DEFINITION_FIELDS if f not in ("preset",)}
    definition = Definition(**{**kept, **changes}, preset=current.preset)
    fields = _checked(policy, definition)
    _name_taken(credentials, fields["name"], other_than=credential_id)
    if all(fields[f] == getattr(current, f) for f in _DEFINITION_FIELDS):
        return []
    return [FederatedCredentialUpdated(account_id=account_id, credential_id=credential_id, **fields)]


def delete(account_id: str, credentials: Credentials, credential_id: str) -> list[Event]:
    require(credentials, credential_id)
    return [FederatedCredentialDeleted(account_id=account_id, credential_id=credential_id)]


def glob_match(pattern: str, value: str) -> bool:
    """``*`` any run of characters, ``?`` one character, anything else itself; linear in the sizes
    of both (no backtracking, whatever the pattern)."""
    p = v = 0
    star = -1
    mark = 0
    while v < len(value):
        if p < len(pattern) and pattern[p] in ("?", value[v]) and pattern[p] != "*":
            p += 1
            v += 1
        elif p < len(pattern) and pattern[p] == "*":
            star, mark = p, v
            p += 1
        elif star >= 0:
            p = star + 1
            mark += 1
            v = mark
        else:
            return False
    return all(c == "*" for c in pattern[p:])


def _claim_text(value: object) -> str | None:
    """A claim compared as text: strings, integers and booleans (GitHub's ids are strings, some
    issuers send numbers); anything else never matches."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int):
        return str(value)
    return None


def _holds(condition: ClaimCondition, claims: Mapping[str, object]) -> bool:
    value = _claim_text(claims.get(condition.claim))
    if value is None:
        return False
    if condition.operator == "glob":
        return glob_match(condition.values[0], value)
    return value in condition.values


def mismatch(credential: FederatedCredential, claims: Mapping[str, object]) -> str | None:
    """Why ``claims`` (of an id-token whose signature, issuer, audience and times were checked) do
    not satisfy ``credential``, for the logs only; None when they do."""
    subject = _claim_text(claims.get("sub"))
    if subject is None or not glob_match(credential.subject, subject):
        return "subject_mismatch"
    for claim in credential.required_claims:
        if claims.get(claim) in (None, ""):
            return "missing_required_claim"
    if not all(_holds(condition, claims) for condition in credential.conditions):
        return "condition_false"
    return None
