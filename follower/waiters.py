"""Read-your-writes for a log follower: callers wait until the follower has handled a cursor.

``CursorWaiters`` holds the cursor its follower has reached and the callers waiting for a later one,
in a heap by cursor: an advance resolves only the waiters it reaches. (With thousands of commands
waiting, waking every waiter on every batch cost more than the batches.) A closed heap (before the
follower starts, after it stops or fails) answers False at once to a cursor it has not reached.
"""

import asyncio
import heapq

from events import LogCursor
from events.envelope import LOG_START


class CursorWaiters:
    def __init__(self, reached: LogCursor = LOG_START) -> None:
        self._reached = reached
        self._open = False
        self._heap: list[tuple[LogCursor, int, asyncio.Future[bool]]] = []
        self._arrivals = 0

    @property
    def reached(self) -> LogCursor:
        """The cursor the follower has handled everything up to (as far as this process knows)."""
        return self._reached

    def open(self) -> None:
        """The follower is running: waits for cursors it has not reached block until it does."""
        self._open = True

    def close(self) -> None:
        """The follower stopped or failed: every pending wait returns False, and so do new ones."""
        self._open = False
        while self._heap:
            _, _, reached = heapq.heappop(self._heap)
            if not reached.done():
                reached.set_result(False)

    def advance(self, cursor: LogCursor) -> None:
        """The follower has handled everything up to ``cursor``; resolves the waits it reaches."""
        self._reached = cursor
        while self._heap and self._heap[0][0] <= cursor:
            _, _, reached = heapq.heappop(self._heap)
            if not reached.done():
                reached.set_result(True)

    async def wait_for(self, cursor: LogCursor, timeout: float) -> bool:  # noqa: ASYNC109
        """True once the follower has reached ``cursor``; False after ``timeout`` seconds, or when
        the follower is (or becomes) closed first."""
        if self._reached >= cursor:
            return True
        if not self._open:
            return False
        reached: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._arrivals += 1
        heapq.heappush(self._heap, (cursor, self._arrivals, reached))
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(reached)
        except TimeoutError:
            return False
