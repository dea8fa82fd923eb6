"""Per-process rate limits of the doors without a bearer token (the token exchange, the leaked-token
revocation endpoints): token buckets, one per key (a client address, say), each refilled at ``rate``
a second up to ``burst``. At most ``max_keys`` buckets are kept: the least recently used is
forgotten first (it starts full again), so a flood of new keys costs bounded memory. Limits are per
process: a node of N processes, or N nodes, admit N times as much.
"""

import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimit:
    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        max_keys: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate, self.burst = rate, burst
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str = "") -> bool:
        """Takes one request of ``key``'s bucket; False when it is empty (refuse the request)."""
        now = self._clock()
        tokens, at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        admitted = tokens >= 1
        self._buckets[key] = (tokens - 1 if admitted else tokens, now)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return admitted
