"""Events of the access-token aggregate (stream ``token-<id>``).

A token's secret is never in the log. What is stored is ``secret_hash``: an HMAC-SHA256 of the secret
under the deployment's pepper (useless without it), so the verification read model can be rebuilt
from the log. ``secret_hash`` is a private field: it never leaves the log (Kafka, audit API).
"""

from datetime import datetime
from typing import ClassVar

import msgspec

from events.base import Event, PrivateFields
from events.frozen import FrozenMap


class Provenance(msgspec.Struct, frozen=True, kw_only=True):
    """Where a federated token came from: the federated credential it was exchanged through, and
    the id-token exchanged (its issuer, subject, ``jti`` and the claims the audit trail keeps:
    repository, workflow ref, environment, namespace, pod...)."""

    credential_id: str
    issuer: str
    subject: str
    jti: str
    claims: FrozenMap[str, str] = FrozenMap()


class TokenIssued(Event, frozen=True, tag="token.issued"):
    private_fields: ClassVar[PrivateFields] = frozenset({"secret_hash"})

    token_id: str
    account_id: str
    name: str
    secret_hash: str
    expires_at: datetime | None
    scopes: tuple[str, ...] | None = None
    auto_extend_seconds: int | None = None
    max_expires_at: datetime | None = None
    federated: Provenance | None = None
    """Set for a token obtained by an OIDC token exchange: short-lived, never renewed, outside the
    uniqueness of names."""


class TokenRenamed(Event, frozen=True, tag="token.renamed"):
    token_id: str
    account_id: str
    name: str


class TokenRotated(Event, frozen=True, tag="token.rotated"):
    """A new secret for the same token id. The previous secret keeps working until
    ``previous_valid_until`` (None: it stopped at once)."""

    private_fields: ClassVar[PrivateFields] = frozenset({"secret_hash"})

    token_id: str
    account_id: str
    secret_hash: str
    secret_version: int
    previous_valid_until: datetime | None = None


class TokenSecretRetired(Event, frozen=True, tag="token.secret_retired"):
    """The grace period of a rotation ended: the secret of ``secret_version`` stops working."""

    token_id: str
    account_id: str
    secret_version: int


class TokenExtended(Event, frozen=True, tag="token.extended"):
    """Sliding expiry: a use pushed ``expires_at`` forward."""

    token_id: str
    account_id: str
    expires_at: datetime


class TokenRevoked(Event, frozen=True, tag="token.revoked", omit_defaults=True):
    """``location`` is left out of the stored and published JSON when it has none, so every
    revocation but a scanner's reads as it always did."""

    token_id: str
    account_id: str
    reason: str
    location: str | None = None
    """For reason ``leaked``: where a secret scanner found the secret (as it reported it)."""


class TokenDeleted(Event, frozen=True, tag="token.deleted"):
    """Hidden from listings. Always follows a ``token.revoked`` (reason ``deleted``) if still active."""

    token_id: str
    account_id: str


class TokenExpired(Event, frozen=True, tag="token.expired"):
    token_id: str
    account_id: str
    expires_at: datetime


class TokenExpiringSoon(Event, frozen=True, tag="token.expiring_soon"):
    token_id: str
    account_id: str
    expires_at: datetime
    lead_seconds: int


class TokenRotationDue(Event, frozen=True, tag="token.rotation_due"):
    token_id: str
    account_id: str
    due_at: datetime


class TokenUsed(Event, frozen=True, tag="token.used"):
    """A verification accepted this token (recorded in the stream ``token-usage-<token_id>``, apart
    from the token's own stream so that recording use never contends with commands)."""

    token_id: str
    account_id: str
    used_at: datetime
    operation: str = ""
    client_address: str | None = None
    user_agent: str | None = None


TOKEN_EVENTS: tuple[type[Event], ...] = (
    TokenIssued,
    TokenRenamed,
    TokenRotated,
    TokenSecretRetired,
    TokenExtended,
    TokenRevoked,
    TokenDeleted,
    TokenExpired,
    TokenExpiringSoon,
    TokenRotationDue,
    TokenUsed,
)
