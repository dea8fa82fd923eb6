"""The token model's use-driven decisions, the usage recorder's: ``extension`` (sliding expiry: how
far a use moves ``expires_at``, if at all), and ``used`` / ``extended``, the ``token.used`` and
``token.extended`` events whose ids derive from their content (so a retried batch is recognised as a
retry). The token's write model and its other decisions are in ``services.tokens.model``.
"""

import uuid
from datetime import datetime, timedelta

from events import Metadata, NewEvent
from events.tokens import TokenExtended, TokenUsed
from services.tokens.expiry import whole_seconds

USAGE_EVENT_IDS = uuid.UUID("0b6a4f0e-2c1d-4c55-9a53-3f0f5d7c9e21")
"""Namespace of the uuid5 event ids of ``token.used`` and ``token.extended``."""


def extension(
    expires_at: datetime | None,
    max_expires_at: datetime | None,
    auto_extend_seconds: int | None,
    now: datetime,
) -> datetime | None:
    """Sliding expiry: the new ``expires_at`` of a token used at ``now`` whose expiry is
    ``expires_at``: ``min(now + auto_extend_seconds, max_expires_at)`` in whole seconds, when that
    gains more than ``min(1% of auto_extend_seconds, 60 s)``; None otherwise (and for a token
    without sliding expiry, or one that never expires)."""
    if not auto_extend_seconds or expires_at is None:
        return None
    target = whole_seconds(now + timedelta(seconds=auto_extend_seconds))
    if max_expires_at is not None:
        target = min(target, max_expires_at)
    if target - expires_at <= timedelta(seconds=min(auto_extend_seconds / 100, 60.0)):
        return None
    return target


def used_event_id(token_id: str, used_at: datetime) -> uuid.UUID:
    return uuid.uuid5(USAGE_EVENT_IDS, f"token.used\x00{token_id}\x00{used_at.isoformat()}")


def extended_event_id(token_id: str, expires_at: datetime) -> uuid.UUID:
    return uuid.uuid5(USAGE_EVENT_IDS, f"token.extended\x00{token_id}\x00{expires_at.isoformat()}")


def _by_the_token(account_id: str, token_id: str, at: datetime) -> Metadata:
    """A use is the token's own act: its account is the actor."""
    return Metadata(occurred_at=at, actor=account_id, actor_token_id=token_id)


def used(
    *,
    token_id: str,
    account_id: str,
    used_at: datetime,
    operation: str,
    client_address: str | None,
    user_agent: str | None,
) -> NewEvent:
    """``token.used`` (for ``usage_stream_of(token_id)``), its id derived from the token and the time."""
    event = TokenUsed(
        token_id=token_id,
        account_id=account_id,
        used_at=used_at,
        operation=operation,
        client_address=client_address,
        user_agent=user_agent,
    )
    return NewEvent(
        event=event,
        metadata=_by_the_token(account_id, token_id, used_at),
        event_id=used_event_id(token_id, used_at),
    )


def extended(*, token_id: str, account_id: str, expires_at: datetime, decided_at: datetime) -> NewEvent:
    """``token.extended`` (for ``stream_of(token_id)``), its id derived from the token and the new
    expiry; it occurred when the use that caused it was seen."""
    event = TokenExtended(token_id=token_id, account_id=account_id, expires_at=expires_at)
    return NewEvent(
        event=event,
        metadata=_by_the_token(account_id, token_id, decided_at),
        event_id=extended_event_id(token_id, expires_at),
    )
