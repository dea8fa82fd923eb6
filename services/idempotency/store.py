"""The idempotency claims table (``services.idempotency_claims.IdempotencyClaims`` on PostgreSQL):
one row per (scope, key), where the scope is the credential that used the key and the command's kind.

A request claims the key's row (pending) and runs; when it ends, however it ends, the row is
completed, keeping for a run that changed nothing what its answer was decided on (migration 0007).
A retry with the same fingerprint claims the completed row again (and is handed that); another
fingerprint under the same key (and scope) is a ``Mismatch``; a retry while a run is pending is
``InProgress``, unless that run's claim is older than ``pending_timeout`` (its process died), when
the retry takes it over.
Rows expire after ``ttl`` (24 h): an expired row is overwritten by any request, and
``IdempotencyHousekeeping`` deletes expired rows periodically so the table does not grow for ever.
"""

import logging
import uuid
from datetime import timedelta

import asyncpg

from follower.worker import PeriodicWorker
from services.commands import Unchanged
from services.idempotency_claims import Claimed, ClaimOutcome, InProgress, Mismatch

DEFAULT_TTL = timedelta(hours=24)
DEFAULT_PENDING_TIMEOUT = timedelta(minutes=1)
PURGE_INTERVAL_SECONDS = 600.0


_log = logging.getLogger(__name__)
_DATABASE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)

_CLAIM = """
INSERT INTO idempotency_keys AS k (scope, key, request_fingerprint, state, claim_id)
VALUES ($1, $2, $3, 'pending', $4)
ON CONFLICT (scope, key) DO UPDATE
SET request_fingerprint = EXCLUDED.request_fingerprint, state = 'pending', claim_id = EXCLUDED.claim_id,
    claimed_at = now(), completed_at = NULL,
    created_at = CASE WHEN k.created_at <= now() - $5::interval THEN now() ELSE k.created_at END,
    unchanged_stream = CASE WHEN k.created_at <= now() - $5::interval THEN NULL ELSE k.unchanged_stream END,
    unchanged_version = CASE WHEN k.created_at <= now() - $5::interval THEN NULL ELSE k.unchanged_version END
WHERE k.created_at <= now() - $5::interval
   OR (k.request_fingerprint = EXCLUDED.request_fingerprint
       AND (k.state = 'completed' OR k.claimed_at <= now() - $6::interval))
RETURNING k.claim_id, k.unchanged_stream, k.unchanged_version
"""
_EXISTING = """
SELECT request_fingerprint FROM idempotency_keys
WHERE scope = $1 AND key = $2 AND created_at > now() - $3::interval
"""
_COMPLETE = """
UPDATE idempotency_keys
SET state = 'completed', completed_at = now(), unchanged_stream = $4, unchanged_version = $5
WHERE scope = $1 AND key = $2 AND claim_id = $3 AND state = 'pending'
"""
_PURGE = "DELETE FROM idempotency_keys WHERE created_at <= now() - $1::interval"


class IdempotencyStore:
    """The claims table (migrations 0002, 0006 and 0007): one row per (scope, key)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        ttl: timedelta = DEFAULT_TTL,
        pending_timeout: timedelta = DEFAULT_PENDING_TIMEOUT,
    ) -> None:
        self._pool = pool
        self._ttl = ttl
        self._pending_timeout = pending_timeout

    async def claim(self, scope: str, key: str, fingerprint: str) -> ClaimOutcome:
        """Takes the key for this run, or says why not (another request, a run in progress)."""
        for _ in range(3):  # the row may expire between the two statements
            claim_id = uuid.uuid4()
            won = await self._pool.fetchrow(
                _CLAIM, scope, key, fingerprint, claim_id, self._ttl, self._pending_timeout
            )
            if won is not None and won["claim_id"] == claim_id:
                stream, version = won["unchanged_stream"], won["unchanged_version"]
                return Claimed(claim_id, None if stream is None else Unchanged(stream, version))
            stored = await self._pool.fetchval(_EXISTING, scope, key, self._ttl)
            if stored is None:
                continue
            return Mismatch() if stored != fingerprint else InProgress()
        return InProgress()

    async def complete(
        self, scope: str, key: str, claim: Claimed, unchanged: Unchanged | None = None
    ) -> bool:
        """Ends the run, keeping ``unchanged`` for a run that changed nothing; False when its claim
        was lost (taken over after ``pending_timeout``)."""
        stream, version = (None, None) if unchanged is None else (unchanged.stream_id, unchanged.version)
        result: str = await self._pool.execute(_COMPLETE, scope, key, claim.claim_id, stream, version)
        return result == "UPDATE 1"

    async def end(self, scope: str, key: str, claim: Claimed, unchanged: Unchanged | None = None) -> None:
        """``complete``, logging (never raising) a lost claim or an unreachable database."""
        try:
            if not await self.complete(scope, key, claim, unchanged):
                _log.warning("an idempotency claim was taken over before its run ended")
        except _DATABASE_ERRORS:
            _log.exception("could not complete an idempotency claim; it frees itself after pending_timeout")

    async def purge_expired(self) -> int:
        """Deletes expired rows (for a periodic job); returns how many."""
        result: str = await self._pool.execute(_PURGE, self._ttl)
        return int(result.rsplit(" ", 1)[1])


class IdempotencyHousekeeping(PeriodicWorker):
    """Deletes expired claims every ``interval`` seconds (first at start). Any number of processes may
    run one: a purge is one idempotent DELETE."""

    def __init__(self, store: IdempotencyStore, *, interval: float = PURGE_INTERVAL_SECONDS) -> None:
        super().__init__("idempotency-housekeeping", store.purge_expired, interval=interval)
