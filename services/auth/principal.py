"""What a verification yields: the authenticated ``Principal``, or the ``Rejection`` reason.

Rejection reasons exist for metrics and logs only. Every caller-facing answer maps all of them to
the same thing (401, or ``{"active": false}`` from introspection), so a caller never learns whether a
token exists, was revoked, expired or belongs to a disabled account.
"""

import enum
from datetime import datetime

import msgspec

DIRECT = "direct"
TEAM_SOURCE_PREFIX = "team:"


class RoleGrant(msgspec.Struct, frozen=True, kw_only=True):
    """A role the principal holds. ``source`` is ``"direct"`` (assigned to the account) or
    ``"team:<team id>"`` (inherited through membership of that team)."""

    role_name: str
    entity_id: str
    entity_type_name: str
    entity_region: str
    source: str


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """An accepted token and who it acts for, as of the read model the verifier last loaded (and
    the sliding-expiry extensions it has seen since)."""

    token_id: str
    account_id: str
    account_name: str
    token_name: str
    scopes: tuple[str, ...] | None
    roles: tuple[RoleGrant, ...]
    organization_admin: bool
    """The account is konnect-managed (made only by bootstrap): it covers every role on every
    entity type other than Identity (``services.authorization``)."""
    issued_at: datetime
    expires_at: datetime | None
    secret_version: int
    auto_extend_seconds: int | None = None
    """Sliding expiry: each use may push ``expires_at`` to ``now + auto_extend_seconds``..."""
    max_expires_at: datetime | None = None
    """... but never past this."""


class Rejection(enum.Enum):
    """Why a presented token was not accepted. Never shown to the caller."""

    MALFORMED = "malformed"
    """Not a well-formed secret (prefix, length, alphabet or checksum): rejected without a lookup."""
    UNKNOWN = "unknown"
    """No such secret."""
    REVOKED = "revoked"
    """The token was revoked or deleted."""
    EXPIRED = "expired"
    """``expires_at`` has passed (whether or not ``token.expired`` has been recorded yet)."""
    DISABLED = "disabled"
    """The owning account is disabled or deleted."""
    ROTATED_OUT = "rotated_out"
    """A rotated-out secret whose grace period ended, or that was retired."""
    STALE = "stale"
    """Fail-closed: the verifier has seen an event about this token that the read model has not
    caught up with within the wait bound, or could not reach the database. Not the token's fault;
    answered like every other rejection."""


class Verification(msgspec.Struct, frozen=True):
    """One verification in full, for usage history: the verdict and, when the presented secret
    belongs to a known token (accepted, or rejected as revoked, expired, disabled or rotated out),
    that token and its account. Both are None for malformed, unknown and stale rejections."""

    verdict: Principal | Rejection
    token_id: str | None = None
    account_id: str | None = None
