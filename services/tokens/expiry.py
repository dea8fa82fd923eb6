"""When a new token expires: the expiry fields of an issue (``expires_at``, ``ttl_seconds``,
``auto_extend_seconds``, ``max_expires_at``) checked against the deployment's policy.

Expiries tokenledger computes (from ``ttl_seconds``, from ``auto_extend_seconds``, and every
extension: ``usage_model.extension``) are whole seconds, rounded down, so they never pass a limit
by a fraction; an ``expires_at`` the client gives is kept as given. A refusal says what the policy
allows.

``auto_extend_seconds`` without ``expires_at`` (nor ``ttl_seconds``) is an idle timeout: the token
expires ``auto_extend_seconds`` after it is issued unless it is used, and each use slides that
window, never past ``max_expires_at`` (by default the deployment's maximum lifetime from the
issue). Such a token always has an ``expires_at``, so a deployment that refuses tokens that never
expire accepts it.
"""

from datetime import datetime, timedelta

import msgspec

from services.commands import Invalid
from services.policy import TokenPolicy


class Expiry(msgspec.Struct, frozen=True, kw_only=True):
    """A new token's ``expires_at`` (None: never) and the ceiling of its sliding expiry."""

    expires_at: datetime | None
    max_expires_at: datetime | None


def whole_seconds(value: datetime) -> datetime:
    return value.replace(microsecond=0)


def _allowed(policy: TokenPolicy) -> str:
    """What ``policy`` allows, for a refusal."""
    seconds = int(policy.max_lifetime.total_seconds())
    never = "allows" if policy.allow_non_expiring else "does not allow"
    return (
        f"this deployment allows lifetimes of at most {policy.max_lifetime.days} days"
        f" ({seconds} seconds) and {never} tokens that never expire"
    )


def _in_window(policy: TokenPolicy, field: str, seconds: int) -> None:
    # Compared as numbers: timedelta(seconds=...) of a client's number can overflow.
    if not 0 < seconds <= policy.max_lifetime.total_seconds():
        limit = int(policy.max_lifetime.total_seconds())
        raise Invalid(field, f"must be between 1 and {limit} seconds: {_allowed(policy)}")


def resolve(
    policy: TokenPolicy,
    now: datetime,
    *,
    expires_at: datetime | None,
    ttl_seconds: int | None = None,
    auto_extend_seconds: int | None = None,
    max_expires_at: datetime | None = None,
) -> Expiry:
    """The expiry of a token issued at ``now`` with these fields, or ``Invalid`` naming the field."""
    if expires_at is not None and ttl_seconds is not None:
        raise Invalid("ttl_seconds", "give either expires_at or ttl_seconds, not both", "dependent_fields")
    if auto_extend_seconds is None and max_expires_at is not None:
        raise Invalid("max_expires_at", "is only allowed with auto_extend_seconds", "dependent_fields")
    limit = now + policy.max_lifetime
    if ttl_seconds is not None:
        _in_window(policy, "ttl_seconds", ttl_seconds)
        expires_at = whole_seconds(now + timedelta(seconds=ttl_seconds))
    if auto_extend_seconds is not None:
        _in_window(policy, "auto_extend_seconds", auto_extend_seconds)
        ceiling = max_expires_at or limit
        if ceiling > limit:
            raise Invalid("max_expires_at", f"must be at most {policy.max_lifetime.days} days from now")
        if ceiling <= now:
            raise Invalid("max_expires_at", "must be in the future")
        if expires_at is None:
            expires_at = min(whole_seconds(now + timedelta(seconds=auto_extend_seconds)), ceiling)
        elif ceiling < expires_at:
            raise Invalid("max_expires_at", "must not be before expires_at")
    else:
        ceiling = None
    if expires_at is None:
        if not policy.allow_non_expiring:
            raise Invalid("expires_at", f"or ttl_seconds is required: {_allowed(policy)}", "required")
    elif expires_at <= now:
        raise Invalid("expires_at", "must be in the future")
    elif expires_at > limit:
        raise Invalid(
            "expires_at", f"must be at most {policy.max_lifetime.days} days from now: {_allowed(policy)}"
        )
    return Expiry(expires_at=expires_at, max_expires_at=ceiling)
