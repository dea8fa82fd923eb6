"""Group commit for one process's appends: while an append is on its way to PostgreSQL, the
appends that arrive queue up, and when it returns they go together as one ``tl_append`` call (one
transaction, one WAL flush). An append that arrives while nothing is in flight goes at once, alone:
group commit adds no wait, it only uses the wait there already is. Large appends are never merged.

A group is one multi-stream append, so ``tl_append`` gives it every guarantee it gives any append
(stream locks in one order, expected versions checked before a position is drawn, claims, the hash
chain, the (tx_id, position) order). Appends join a group only when they share nothing with it: no
stream, no event id, no claim or release key. That makes the group's outcome the outcome of its
appends made one after the other, and lets each refusal name the one append it belongs to:

- a wrong expected version names its stream, a taken claim its key: that append alone is refused
  with that error (it would have been alone, at that moment, under the same locks), and the group
  is sent again without it (nothing of the failed call was committed);
- any other failure (event ids already stored, which is a retry; content the database refuses; a
  lost connection; a deadlock) sends each append of the group again alone, so each caller gets
  what its append alone answers. A retry of an append whose group did commit answers its stored
  events (``tl_append``'s idempotent retry).
"""

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from services.append_request import AppendRequest

Row = Mapping[str, Any]
"""One appended event as ``tl_append`` returns it: event_id, global_position, stream_version, tx_id."""

APPEND_SQL = "SELECT * FROM tl_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"

GROUPED_EVENTS = 16
"""Appends of more events go at once, alone: they already share their commit among their events,
and merging them would only serialise their work on one connection (measured: half the rate of
100-event appends at concurrency 8)."""

MAX_GROUP_EVENTS = 512
"""Events in one group: a group's transaction holds its streams' locks, so it stays short."""

MAX_ATTEMPTS = 4
"""Calls for one group (each refusal taken out costs one) before the rest go alone."""


def _keys(request: AppendRequest) -> set[tuple[str, object]]:
    """What two appends of one group must not share."""
    return (
        {("stream", s) for s in request.streams}
        | {("event", e) for e in request.event_ids}
        | {("claim", c.key) for c in request.claims}
        | {("claim", r) for r in request.releases}
    )


@dataclass
class _Pending:
    request: AppendRequest
    keys: set[tuple[str, object]]
    answer: asyncio.Future[Sequence[Row]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def settle(self, rows: Sequence[Row] = (), error: BaseException | None = None) -> None:
        if self.answer.done():  # its caller was cancelled; the append was made all the same
            return
        if error is not None:
            self.answer.set_exception(error)
        else:
            self.answer.set_result(rows)


class GroupCommit:
    """Sends appends through ``pool``, at most ``in_flight`` calls at once, merging those that wait."""

    def __init__(self, pool: asyncpg.Pool, *, in_flight: int = 1) -> None:
        self._pool = pool
        self._in_flight = in_flight
        self._running = 0
        self._queue: list[_Pending] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def append(self, request: AppendRequest) -> Sequence[Row]:
        """The stored events of ``request``, or what ``tl_append`` raises for it alone (an
        ``asyncpg.PostgresError``, or the driver's ``ValueError`` for an argument it cannot encode)."""
        if len(request.event_ids) > GROUPED_EVENTS:
            rows: Sequence[Row] = await self._pool.fetch(APPEND_SQL, *_arguments(request))
            return rows
        pending = _Pending(request, _keys(request))
        self._queue.append(pending)
        if self._running < self._in_flight:
            self._send_next()
        return await pending.answer

    def _send_next(self) -> None:
        group: list[_Pending] = []
        taken: set[tuple[str, object]] = set()
        events = 0
        waiting: list[_Pending] = []
        for pending in self._queue:
            size = len(pending.request.event_ids)
            if group and (pending.keys & taken or events + size > MAX_GROUP_EVENTS):
                waiting.append(pending)
                continue
            group.append(pending)
            taken |= pending.keys
            events += size
        self._queue = waiting
        self._running += 1
        task = asyncio.create_task(self._send(group))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, group: list[_Pending]) -> None:
        try:
            await self._together(group)
        finally:
            self._running -= 1
            if self._queue:
                self._send_next()

    async def _together(self, group: list[_Pending]) -> None:
        for _ in range(MAX_ATTEMPTS):
            if len(group) < 2:
                break
            try:
                rows = await self._pool.fetch(APPEND_SQL, *_arguments(_merged([p.request for p in group])))
            except asyncpg.PostgresError as error:
                refused = _refused(group, error)
                if refused is None:
                    break
                refused.settle(error=error)
                group = [p for p in group if p is not refused]
                continue
            except Exception:
                break
            by_event = {row["event_id"]: row for row in rows}
            for pending in group:
                pending.settle([by_event[e] for e in pending.request.event_ids])
            return
        await asyncio.gather(*(self._alone(p) for p in group))

    async def _alone(self, pending: _Pending) -> None:
        try:
            rows = await self._pool.fetch(APPEND_SQL, *_arguments(pending.request))
        except Exception as error:  # the caller's to translate, as for a call of its own
            pending.settle(error=error)
        else:
            pending.settle(rows)


def _refused(group: Sequence[_Pending], error: asyncpg.PostgresError) -> _Pending | None:
    """The one append of ``group`` that ``error`` refuses, when it names one."""
    try:
        detail = json.loads(error.detail or "{}")
    except ValueError:
        return None
    if error.sqlstate == "TLV01":
        return next((p for p in group if detail.get("stream_id") in p.request.streams), None)
    if error.sqlstate == "TLU01":
        return next((p for p in group if any(c.key == detail.get("claim") for c in p.request.claims)), None)
    return None


def _merged(requests: Sequence[AppendRequest]) -> AppendRequest:
    """The requests as one multi-stream request (their streams are distinct)."""
    event_stream: list[int] = []
    offset = 0
    for request in requests:
        event_stream.extend(offset + n for n in request.event_stream)
        offset += len(request.streams)
    return AppendRequest(
        streams=tuple(s for r in requests for s in r.streams),
        expected=tuple(x for r in requests for x in r.expected),
        event_stream=tuple(event_stream),
        event_ids=tuple(e for r in requests for e in r.event_ids),
        types=tuple(t for r in requests for t in r.types),
        data=tuple(d for r in requests for d in r.data),
        metadata=tuple(m for r in requests for m in r.metadata),
        claims=tuple(c for r in requests for c in r.claims),
        releases=tuple(k for r in requests for k in r.releases),
    )


def _arguments(request: AppendRequest) -> list[Any]:
    return [
        request.streams,
        request.expected,
        request.event_stream,
        request.event_ids,
        request.types,
        request.data,
        request.metadata,
        [c.key for c in request.claims],
        [c.stream_id for c in request.claims],
        request.releases,
    ]
