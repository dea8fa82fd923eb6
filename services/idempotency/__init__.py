"""Idempotency keys, away from any door: which request a key names (``keys``), the claims table that
lets one run at a time hold a key (``store``), and the housekeeping that deletes expired claims.

The HTTP door reads the ``Idempotency-Key`` header and drives these (``services.api.idempotency``);
another door (the CLI, a console) uses the same rules and the same table.
"""

from services.idempotency.keys import MAX_KEY_LENGTH, key_problem, request_fingerprint, scope_digest
from services.idempotency.store import (
    DEFAULT_PENDING_TIMEOUT,
    DEFAULT_TTL,
    Claimed,
    ClaimOutcome,
    IdempotencyHousekeeping,
    IdempotencyStore,
    InProgress,
    Mismatch,
)

__all__ = [
    "DEFAULT_PENDING_TIMEOUT",
    "DEFAULT_TTL",
    "MAX_KEY_LENGTH",
    "ClaimOutcome",
    "Claimed",
    "IdempotencyHousekeeping",
    "IdempotencyStore",
    "InProgress",
    "Mismatch",
    "key_problem",
    "request_fingerprint",
    "scope_digest",
]
