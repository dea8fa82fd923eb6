"""The idempotency claims adapter: the PostgreSQL table that lets one run at a time hold a key
(``store``, implementing ``services.idempotency_claims.IdempotencyClaims``), and the housekeeping
that deletes expired claims. The dispatcher drives the claims (``services.dispatch``); every door
only hands it the key.
"""

from services.idempotency.store import (
    DEFAULT_PENDING_TIMEOUT,
    DEFAULT_TTL,
    IdempotencyHousekeeping,
    IdempotencyStore,
)

__all__ = ["DEFAULT_PENDING_TIMEOUT", "DEFAULT_TTL", "IdempotencyHousekeeping", "IdempotencyStore"]
