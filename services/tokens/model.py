"""The token write model (folded from ``token-<id>``) and its pure decisions.

The bounds of rotation grace periods live here too; a new token's expiry under the deployment's
policy is ``services.tokens.expiry``'s.

Time-driven decisions (``expire``, ``warn_expiring_soon``, ``flag_rotation_due``, ``retire_secret``)
are taken by the scheduler. Each returns nothing when its deadline is moot (the token was revoked,
its expiry moved, the event is already in the stream), and ``deadline_key`` names the deadline an
event answers, so that every attempt at one deadline carries the same event id.

The use-driven decisions (the usage recorder's: sliding expiry and the usage events) are in
``services.tokens.usage_model``.
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import msgspec

from events import Event, FrozenMap
from events.tokens import (
    Provenance,
    TokenDeleted,
    TokenExpired,
    TokenExpiringSoon,
    TokenExtended,
    TokenIssued,
    TokenRenamed,
    TokenRevoked,
    TokenRotated,
    TokenRotationDue,
    TokenSecretRetired,
)
from services.commands import Conflict, Invalid, NotFound
from services.names import check_new_name, normalize_name
from services.repository import Aggregate

ACTIVE, REVOKED, EXPIRED = "ACTIVE", "REVOKED", "EXPIRED"
MAX_GRACE_PERIOD = timedelta(days=7)
REVOCATION_CODES = ("compromised", "rotated", "unused", "superseded", "no_longer_needed")
"""The reasons a caller may give by code (consumers may rely on them); any other text is kept too."""
REVOKED_WITHOUT_REASON = "revoked"
"""The reason of a caller's revocation that gives none (every revocation's before reasons were taken)."""
SYSTEM_REVOCATION_REASONS = frozenset({"deleted", "account_deleted", "leaked"})
"""The reasons tokenledger records itself: a token's deletion, its account's, a secret scanner's
report of its secret (``/v1/revoke_tokens``)."""
MAX_REVOCATION_REASON = 255


def stream_of(token_id: str) -> str:
    return f"token-{token_id}"


def usage_stream_of(token_id: str) -> str:
    """The stream of a token's ``token.used`` events (apart from ``token-<id>``: uses are many)."""
    return f"token-usage-{token_id}"


def name_claim(account_id: str, name: str) -> str:
    return f"token-name:{account_id}:{name}"


def account_claims_prefix(account_id: str) -> str:
    return f"token-name:{account_id}:"


def federated_claim(account_id: str, token_id: str) -> str:
    """Held by a live federated token (which has no name claim), so that the deletion of its
    account finds it; released when the token is revoked, expired or deleted."""
    return f"token-federated:{account_id}:{token_id}"


def federated_claims_prefix(account_id: str) -> str:
    return f"token-federated:{account_id}:"


def ending_releases(state: "Token", events: Sequence[Event]) -> list[str]:
    """The claims ``events`` release because they end the token's life (its federated claim)."""
    ends = any(isinstance(event, TokenRevoked | TokenExpired | TokenDeleted) for event in events)
    return [federated_claim(state.account_id, state.token_id)] if ends and state.federated else []


class Token(msgspec.Struct, frozen=True, kw_only=True):
    token_id: str
    version: int = 0
    exists: bool = False
    deleted: bool = False
    account_id: str = ""
    name: str = ""
    state: str = ACTIVE
    created_at: datetime | None = None
    updated_at: datetime | None = None
    expires_at: datetime | None = None
    max_expires_at: datetime | None = None
    auto_extend_seconds: int | None = None
    scopes: tuple[str, ...] | None = None
    secret_version: int = 1
    revoked_at: datetime | None = None
    revoke_reason: str | None = None
    secret_set_at: datetime | None = None
    """When the current secret was issued (the token's issue or its latest rotation)."""
    rotation_flagged: bool = False
    """``token.rotation_due`` was recorded for the current secret."""
    warned_lead_seconds: int | None = None
    """The shortest lead of the ``token.expiring_soon`` recorded for the current ``expires_at``."""
    retiring: FrozenMap[int, datetime] = FrozenMap()
    """The previous secret version while in its grace period: version -> end of the grace period.
    At most one: a rotation ends every earlier secret except the one it replaces (and that one too
    when it gives no grace period)."""
    federated: Provenance | None = None
    """A token obtained by an OIDC token exchange: never rotated nor renamed (it has no name claim)."""

    @property
    def visible(self) -> bool:
        return self.exists and not self.deleted

    def state_at(self, now: datetime) -> str:
        """The state a reader sees: an ACTIVE token past its expiry is EXPIRED even before the
        scheduler has written ``token.expired``."""
        if self.state == ACTIVE and self.expires_at is not None and self.expires_at <= now:
            return EXPIRED
        return self.state


def evolve(state: Token, event: Event, version: int, at: datetime) -> Token:
    """The state after ``event``, the stream's ``version``-th, which occurred ``at``."""
    base = msgspec.structs.replace(state, version=version)
    match event:
        case TokenIssued():
            return msgspec.structs.replace(
                base,
                exists=True,
                account_id=event.account_id,
                name=event.name,
                created_at=at,
                updated_at=at,
                expires_at=event.expires_at,
                max_expires_at=event.max_expires_at,
                auto_extend_seconds=event.auto_extend_seconds,
                scopes=event.scopes,
                secret_set_at=at,
                federated=event.federated,
            )
        case TokenRenamed():
            return msgspec.structs.replace(base, name=event.name, updated_at=at)
        case TokenRotated():
            retiring: FrozenMap[int, datetime] = FrozenMap()
            if event.previous_valid_until is not None:
                retiring = FrozenMap({event.secret_version - 1: event.previous_valid_until})
            return msgspec.structs.replace(
                base,
                secret_version=event.secret_version,
                updated_at=at,
                secret_set_at=at,
                rotation_flagged=False,
                retiring=retiring,
            )
        case TokenExtended():
            return msgspec.structs.replace(
                base, expires_at=event.expires_at, updated_at=at, warned_lead_seconds=None
            )
        case TokenExpiringSoon():
            if event.expires_at == state.expires_at:
                warned = state.warned_lead_seconds
                lead = event.lead_seconds if warned is None else min(warned, event.lead_seconds)
                return msgspec.structs.replace(base, warned_lead_seconds=lead)
        case TokenRotationDue():
            return msgspec.structs.replace(base, rotation_flagged=True)
        case TokenSecretRetired():
            retiring = FrozenMap({v: t for v, t in state.retiring.items() if v != event.secret_version})
            return msgspec.structs.replace(base, retiring=retiring)
        case TokenRevoked():
            return msgspec.structs.replace(
                base, state=REVOKED, revoked_at=at, revoke_reason=event.reason, updated_at=at
            )
        case TokenExpired():
            if state.state == ACTIVE:
                return msgspec.structs.replace(base, state=EXPIRED)
        case TokenDeleted():
            return msgspec.structs.replace(base, deleted=True)
    return base


TOKENS = Aggregate[Token](
    stream_of=stream_of,
    empty=lambda token_id: Token(token_id=token_id),
    evolve=evolve,
    id_of=lambda token: token.token_id,
    live=lambda token: token.visible,
    duplicate="the system account already has an access token with this name",
)
fold = TOKENS.fold


def secret_works(state: Token, secret_version: int, now: datetime) -> bool:
    """A secret of this version authenticates at ``now``: the token is usable and the version is
    the current one, or the one just replaced while its grace period lasts."""
    if not state.visible or state.state_at(now) != ACTIVE:
        return False
    if secret_version == state.secret_version:
        return True
    valid_until = state.retiring.get(secret_version)
    return valid_until is not None and valid_until > now


def require_visible(state: Token, account_id: str) -> Token:
    if not state.visible or state.account_id != account_id:
        raise NotFound("access token not found")
    return state


def _require_long_lived(state: Token, change: str) -> None:
    if state.federated is not None:
        raise Conflict(f"a federated token is not {change}: exchange a new id-token instead")


def rename(state: Token, name: str) -> list[Event]:
    _require_long_lived(state, "renamed")
    if name == state.name:
        return []
    check_new_name(name)
    return [TokenRenamed(token_id=state.token_id, account_id=state.account_id, name=name)]


def revocation_reason(reason: str | None) -> str:
    """The reason a caller's revocation records: one of ``REVOCATION_CODES``, any other bounded text
    (in the normal form of names), or ``revoked`` when none is given. tokenledger's own reasons
    (``SYSTEM_REVOCATION_REASONS``) are refused: a caller cannot make a revocation look like one."""
    if reason is None:
        return REVOKED_WITHOUT_REASON
    normal = normalize_name(reason)
    check_new_name(normal, "reason")
    if len(normal) > MAX_REVOCATION_REASON:
        raise Invalid("reason", f"must not have more than {MAX_REVOCATION_REASON} characters")
    if normal in SYSTEM_REVOCATION_REASONS:
        raise Invalid("reason", f"{normal} is a reason only tokenledger records")
    return normal


def revoke(state: Token, reason: str, location: str | None = None) -> list[Event]:
    if state.state == REVOKED:
        return []
    return [
        TokenRevoked(token_id=state.token_id, account_id=state.account_id, reason=reason, location=location)
    ]


def rotate(state: Token, now: datetime, secret_hash: str, grace_period_seconds: int) -> list[Event]:
    _require_long_lived(state, "renewable")
    if state.state_at(now) != ACTIVE:
        raise Conflict(f"only an active token can be rotated; this one is {state.state_at(now)}")
    if not 0 <= grace_period_seconds <= MAX_GRACE_PERIOD.total_seconds():
        limit = int(MAX_GRACE_PERIOD.total_seconds())
        raise Invalid("grace_period_seconds", f"must be between 0 and {limit}")
    valid_until = now + timedelta(seconds=grace_period_seconds) if grace_period_seconds else None
    return [
        TokenRotated(
            token_id=state.token_id,
            account_id=state.account_id,
            secret_hash=secret_hash,
            secret_version=state.secret_version + 1,
            previous_valid_until=valid_until,
        )
    ]


def delete(state: Token) -> list[Event]:
    return [*revoke(state, "deleted"), TokenDeleted(token_id=state.token_id, account_id=state.account_id)]


# -- time-driven decisions (the scheduler's) ----------------------------------------------------


def _live(state: Token) -> bool:
    return state.exists and state.state == ACTIVE


def expire(state: Token, now: datetime) -> list[Event]:
    """``token.expired`` once an active token's ``expires_at`` has passed (moved by an extension:
    the new one counts)."""
    if not _live(state) or state.expires_at is None or state.expires_at > now:
        return []
    return [TokenExpired(token_id=state.token_id, account_id=state.account_id, expires_at=state.expires_at)]


def warn_expiring_soon(state: Token, now: datetime, leads: Sequence[timedelta]) -> list[Event]:
    """``token.expiring_soon`` for the shortest of ``leads`` already reached, unless a warning with
    that lead or a shorter one was recorded for the current ``expires_at`` (longer leads that were
    overtaken, e.g. by a token issued for less than them, are skipped)."""
    if not _live(state) or state.expires_at is None or state.expires_at <= now:
        return []
    reached = [lead for lead in leads if state.expires_at - lead <= now]
    if not reached:
        return []
    lead_seconds = int(min(reached).total_seconds())
    if state.warned_lead_seconds is not None and state.warned_lead_seconds <= lead_seconds:
        return []
    return [
        TokenExpiringSoon(
            token_id=state.token_id,
            account_id=state.account_id,
            expires_at=state.expires_at,
            lead_seconds=lead_seconds,
        )
    ]


def rotation_due_at(state: Token, period: timedelta | None) -> datetime | None:
    if period is None or state.secret_set_at is None:
        return None
    return state.secret_set_at + period


def flag_rotation_due(state: Token, now: datetime, period: timedelta | None) -> list[Event]:
    """``token.rotation_due`` once the current secret is older than ``period`` (the account's or
    the deployment's; None: never), once per secret, while the token is usable."""
    due_at = rotation_due_at(state, period)
    if due_at is None or due_at > now or state.rotation_flagged or state.state_at(now) != ACTIVE:
        return []
    return [TokenRotationDue(token_id=state.token_id, account_id=state.account_id, due_at=due_at)]


def retire_secret(state: Token, now: datetime, secret_version: int) -> list[Event]:
    """``token.secret_retired`` once the grace period of ``secret_version`` has ended (moot for a
    token that is no longer active: none of its secrets work)."""
    valid_until = state.retiring.get(secret_version)
    if not _live(state) or valid_until is None or valid_until > now:
        return []
    retired = TokenSecretRetired(
        token_id=state.token_id, account_id=state.account_id, secret_version=secret_version
    )
    return [retired]


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def deadline_key(state: Token, event: Event) -> str:
    """The deadline a time-driven ``event`` answers: token (through its stream), kind and instant.
    Used as the idempotency key of the scheduler's append, so its event id is deterministic."""
    match event:
        case TokenExpired():
            return f"{event.tag()}@{_instant(event.expires_at)}"
        case TokenExpiringSoon():
            return f"{event.tag()}@{_instant(event.expires_at)}-{event.lead_seconds}s"
        case TokenRotationDue():
            return f"{event.tag()}@{_instant(event.due_at)}"
        case TokenSecretRetired():
            valid_until = state.retiring[event.secret_version]
            return f"{event.tag()}@{_instant(valid_until)}-v{event.secret_version}"
    raise ValueError(f"{event.tag()} is not a time-driven event")
