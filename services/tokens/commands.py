"""The commands on access tokens, as data: the callers' (issue, rename, revoke, rotate, delete),
the scheduler's time-driven ones (expire, warn, flag rotation due, retire a secret) and the usage
recorder's (record uses and sliding-expiry extensions).

Each has one handler (``services.tokens.handlers``), reached only through
``services.dispatch.Dispatcher``, which authorises the actor first; the time-driven and use-driven
commands are tokenledger's own and refused to any caller.
"""

from datetime import datetime, timedelta

import msgspec

from events import FrozenMap


class IssueToken(msgspec.Struct, frozen=True, kw_only=True, tag="token.issue"):
    account_id: str
    name: str
    expires_at: datetime | None
    scopes: tuple[str, ...] | None = None
    auto_extend_seconds: int | None = None
    max_expires_at: datetime | None = None
    ttl_seconds: int | None = None
    """Instead of ``expires_at``: the token expires this long after it is issued."""


class RenameToken(msgspec.Struct, frozen=True, kw_only=True, tag="token.rename"):
    account_id: str
    token_id: str
    name: str


class RevokeToken(msgspec.Struct, frozen=True, kw_only=True, tag="token.revoke"):
    account_id: str
    token_id: str
    reason: str | None = None
    """A code (``model.REVOCATION_CODES``) or bounded text; None records ``revoked``."""


class RotateToken(msgspec.Struct, frozen=True, kw_only=True, tag="token.rotate"):
    account_id: str
    token_id: str
    grace_period_seconds: int = 0


class DeleteToken(msgspec.Struct, frozen=True, kw_only=True, tag="token.delete"):
    account_id: str
    token_id: str


class ExpireToken(msgspec.Struct, frozen=True, kw_only=True, tag="token.expire"):
    token_id: str


class WarnTokenExpiring(msgspec.Struct, frozen=True, kw_only=True, tag="token.warn_expiring"):
    token_id: str
    leads: tuple[timedelta, ...]
    """The warning leads configured."""


class FlagTokenRotationDue(msgspec.Struct, frozen=True, kw_only=True, tag="token.flag_rotation_due"):
    token_id: str
    deployment_period: timedelta | None
    """The deployment's rotation period, for accounts without one of their own."""


class RetireTokenSecret(msgspec.Struct, frozen=True, kw_only=True, tag="token.retire_secret"):
    token_id: str
    secret_version: int


class TokenUse(msgspec.Struct, frozen=True, kw_only=True):
    """One use of a token, recorded as ``token.used``; the client's text is already recordable
    (``services.client_text.recordable``)."""

    token_id: str
    account_id: str
    used_at: datetime
    operation: str
    client_address: str | None = None
    user_agent: str | None = None


class TokenExtension(msgspec.Struct, frozen=True, kw_only=True):
    """A sliding-expiry extension decided (``usage_model.extension``) on a use at ``decided_at``, recorded
    as ``token.extended``."""

    token_id: str
    account_id: str
    expires_at: datetime
    decided_at: datetime


class RecordTokenUsage(msgspec.Struct, frozen=True, kw_only=True, tag="token.record_usage"):
    """A batch of the usage recorder's: appended as it is, in one append."""

    uses: tuple[TokenUse, ...] = ()
    extensions: tuple[TokenExtension, ...] = ()


class ExchangeFederatedToken(msgspec.Struct, frozen=True, kw_only=True, tag="token.exchange"):
    """Issue a short-lived token of ``account_id`` to the holder of an id-token the exchange door
    verified (signature, issuer, audience, times): its ``claims`` as text (``sub`` and those the
    credential names), to be matched against the federated credential as the account's stream has
    it now, and its ``exp`` (``id_token_expires_at``: its ``jti`` claim is kept until then). Sent
    only as the ``FederatedActor`` of that credential."""

    account_id: str
    credential_id: str
    issuer: str
    jti: str
    id_token_expires_at: datetime
    claims: FrozenMap[str, str]
    scopes: tuple[str, ...] | None = None
    requested_lifetime_seconds: int | None = None


class RevokeLeakedToken(msgspec.Struct, frozen=True, kw_only=True, tag="token.revoke_leaked"):
    """A secret scanner reported the token's secret found at ``location``: revoke it, reason
    ``leaked``. tokenledger's own (the revocation door's); a token already revoked, or gone, is
    left as it is."""

    token_id: str
    location: str
