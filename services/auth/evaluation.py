"""Pure evaluation of a verification: what the read model said about a secret hash (``Entry``), and
whether it authenticates at an instant (``evaluate``). No I/O, no clock of its own.

Every verification, from the cache or from a fresh load, re-checks state and time here, so expiry
never depends on the scheduler having recorded ``token.expired``.
"""

import hmac
from dataclasses import dataclass
from datetime import datetime

from events import LogCursor
from services.auth.principal import Principal, Rejection

ACTIVE = "ACTIVE"
EXPIRED = "EXPIRED"


@dataclass(slots=True)
class Entry:
    """What the read model said about one secret hash, at ``checkpoint``. ``principal`` is None
    when the hash is unknown. (Mutable: sliding expiry moves a cached principal's ``expires_at``.)"""

    secret_hash: str
    checkpoint: LogCursor
    principal: Principal | None = None
    state: str = ""
    deleted: bool = False
    account_enabled: bool = False
    account_expires_at: datetime | None = None
    """The end of the account's lifetime: its tokens stop then, before ``account.expired`` is in."""
    retired: bool = False
    valid_until: datetime | None = None
    versions_behind: int = 0
    """How many rotations the presented secret is behind the token's current one: 0 for the
    current secret, 1 for the one the latest rotation replaced (valid in its grace period only)."""


def evaluate(entry: Entry, hashed: str, now: datetime) -> Principal | Rejection:
    """The principal ``entry`` authenticates at ``now`` for the presented secret's ``hashed``, or why
    not (the first reason that applies, in the order below)."""
    principal = entry.principal
    if principal is None or not hmac.compare_digest(entry.secret_hash, hashed):
        return Rejection.UNKNOWN
    if entry.deleted or (entry.state != ACTIVE and entry.state != EXPIRED):
        return Rejection.REVOKED
    if entry.state == EXPIRED:
        return Rejection.EXPIRED
    if not entry.account_enabled:
        return Rejection.DISABLED
    if entry.account_expires_at is not None and entry.account_expires_at <= now:
        return Rejection.DISABLED
    if principal.expires_at is not None and principal.expires_at <= now:
        return Rejection.EXPIRED
    if entry.retired:
        return Rejection.ROTATED_OUT
    if entry.valid_until is not None and entry.valid_until <= now:
        return Rejection.ROTATED_OUT
    if entry.versions_behind > 1:
        # Every rotation ends all secrets before the one it replaces, whatever their grace.
        return Rejection.ROTATED_OUT
    if entry.versions_behind and entry.valid_until is None:
        # A rotated-out secret without a grace period stopped at once (token.rotated).
        return Rejection.ROTATED_OUT
    return principal
