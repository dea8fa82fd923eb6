"""What one process knows of the checkpoints the projection runners have committed, in any process.

A process that runs the runners tells the others after each committed batch: the payload of its
notice (``encode``) is, for every runner it has following the log, the projection's name, the
version and generation of its live tables, and the checkpoint committed with them. ``KnownCheckpoints``
keeps, per projection, the newest such checkpoint it was told about (from a notice or from a look at
the checkpoint table) and the waiters for later cursors, so the barrier of a process without runners
resolves a command's wait in memory when the notice arrives, without a query.

Why it never resolves a wait too early. Every checkpoint it learns was read from a committed
checkpoint row (a runner moves its in-memory checkpoint only after the batch's transaction commits,
and a look reads the table), and the rows the views show at that checkpoint are committed with it.
Within one version and generation a checkpoint only moves forward; a switch to new tables (a rebuild
or a new version) raises the generation or the version and is caught up to the live checkpoint before
it, and a checkpoint of older tables, told late, is ignored. So a notice that is lost or arrives out of
order can only make a waiter wait for the next notice or look, never answer before its cursor is in
every read model it waits for.
"""

from collections.abc import Iterable

import msgspec

from events import LogCursor
from follower.waiters import CursorWaiters


class CommittedCheckpoint(msgspec.Struct, frozen=True):
    name: str
    version: int
    generation: int
    cursor: LogCursor

    @property
    def tables(self) -> tuple[int, int]:
        """Which tables the checkpoint is of: later switches compare higher."""
        return (self.version, self.generation)


def encode(checkpoints: Iterable[CommittedCheckpoint]) -> str:
    """``name:version:generation:tx_id:position`` per projection, comma-separated (names are plain
    identifiers, so the payload is letters, digits, ``_``, ``:`` and ``,``)."""
    return ",".join(
        f"{c.name}:{int(c.version)}:{int(c.generation)}:{int(c.cursor.tx_id)}:{int(c.cursor.position)}"
        for c in checkpoints
    )


def decode(payload: str) -> list[CommittedCheckpoint]:
    """The checkpoints of a payload; a part that is not one (an older sender's empty payload) is
    skipped."""
    checkpoints = []
    for part in payload.split(","):
        fields = part.split(":")
        if len(fields) != 5:
            continue
        try:
            version, generation, tx_id, position = (int(field) for field in fields[1:])
        except ValueError:
            continue
        checkpoints.append(CommittedCheckpoint(fields[0], version, generation, LogCursor(tx_id, position)))
    return checkpoints


class KnownCheckpoints:
    """Per projection, the newest committed checkpoint this process was told about, and its waiters."""

    def __init__(self) -> None:
        self._tables: dict[str, tuple[int, int]] = {}
        self._waiters: dict[str, CursorWaiters] = {}

    def learn(self, checkpoints: Iterable[CommittedCheckpoint]) -> None:
        """Takes each checkpoint that is newer than the one known for its projection (see the module
        docstring); resolves the waits it reaches."""
        for checkpoint in checkpoints:
            waiters = self._of(checkpoint.name)
            tables = self._tables.get(checkpoint.name, (-1, -1))
            if checkpoint.tables < tables or (
                checkpoint.tables == tables and checkpoint.cursor <= waiters.reached
            ):
                continue
            self._tables[checkpoint.name] = checkpoint.tables
            waiters.advance(checkpoint.cursor)

    def reached(self, name: str, cursor: LogCursor) -> bool:
        return self._of(name).reached >= cursor

    async def wait_for(self, name: str, cursor: LogCursor, timeout: float) -> bool:  # noqa: ASYNC109
        """True once ``name`` is known to have committed ``cursor``; False after ``timeout``."""
        return await self._of(name).wait_for(cursor, timeout)

    def _of(self, name: str) -> CursorWaiters:
        waiters = self._waiters.get(name)
        if waiters is None:
            waiters = self._waiters[name] = CursorWaiters()
            waiters.open()  # never closed: a wait ends when its cursor is known, or on its timeout
        return waiters
