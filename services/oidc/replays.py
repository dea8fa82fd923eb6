"""Releasing the uniqueness claims of exchanged id-tokens once no node accepts them any more.

The exchange claims each id-token's ``(issuer, jti)`` (``services.tokens.exchange.jti_claim``, its
key led by the token's ``exp``) so that a replay is refused on every node. A token is refused as
expired once its ``exp`` is ``LEEWAY_SECONDS`` past, so its claim decides nothing after that: this
housekeeping deletes the claims whose ``exp`` is more than the leeway and ``CLOCK_SKEW`` (how far a
node's clock may lag this one's) in the past, one indexed range ``DELETE``: the claims held are
those of id-tokens still valid (a day at most, ``MAX_LIFETIME_SECONDS``), not every one exchanged.
The log is untouched (claims are no event, and no read model holds them), so rebuilds stay the
same. Any number of processes may run it: the delete is idempotent.
"""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import asyncpg

from follower.worker import PeriodicWorker
from services.eventstore.store import release_claims_below
from services.oidc.verification import LEEWAY_SECONDS
from services.tokens.exchange import JTI_CLAIMS, lapsed_jti_claims_bound

CLOCK_SKEW = timedelta(minutes=5)
INTERVAL_SECONDS = 300.0
_log = logging.getLogger(__name__)


class ReplayClaimsHousekeeping(PeriodicWorker):
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        interval: float = INTERVAL_SECONDS,
        clock: Callable[[], datetime],
    ) -> None:
        super().__init__("id-token replay claims housekeeping", self.release_lapsed, interval=interval)
        self._pool = pool
        self._clock = clock

    async def release_lapsed(self) -> int:
        """Releases the claims of id-tokens expired past the leeway and the skew; how many."""
        before = self._clock() - timedelta(seconds=LEEWAY_SECONDS) - CLOCK_SKEW
        released = await release_claims_below(self._pool, JTI_CLAIMS, lapsed_jti_claims_bound(before))
        if released:
            _log.info("released the replay claims of %d expired id-tokens", released)
        return released
