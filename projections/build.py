"""Building projections into fresh tables from the start of the log, and switching them live.

One scan of the log feeds every projection being built, so a build of all read models decodes each
event once. A projection that is ``Foldable`` is folded in memory and written with one ``COPY`` per
table (then its indexes are created); one that is not (or whose fold grew past ``max_fold_rows``)
has its statements run in one transaction per batch. Whatever the scan did not reach is then applied
with statements (``catch_up``), and ``switch`` makes the new tables live: views, checkpoint row and
generation change in one transaction, under the lock on the checkpoint row that every batch of the
live runner takes too, so the switch lands between two of its batches. The old tables are dropped
after the commit. A build writes only to its own new tables until that switch.

A poison event, or any other error while writing one projection's tables, stops only that projection
(``BuildTarget.failure``); the others of the same scan carry on. An error reading the log stops all.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from events import LogCursor, RecordedEvent
from events.envelope import LOG_START
from projections import bookkeeping
from projections.base import LogSource, Projection, Statement
from projections.executor import execute, is_poison
from projections.fold import Fold, Foldable
from projections.naming import renderer

_log = logging.getLogger(__name__)

BUILD_BATCH_SIZE = 10_000
MAX_FOLD_ROWS = 5_000_000


class RebuildConflict(RuntimeError):
    """The live state changed under a rebuild (another rebuild or a new version won): nothing was
    switched, and the rebuild's tables were dropped."""


class PoisonEvent(Exception):
    """A projection cannot apply ``event``: its reducer raised, or its SQL failed for good."""

    def __init__(self, projection: str, event: RecordedEvent, error: BaseException) -> None:
        super().__init__(
            f"{projection}: event {event.global_position} ({event.type}) cannot be applied: {error}"
        )
        self.projection = projection
        self.event = event
        self.error = error


class BuildTarget:
    """One projection being built into ``tables`` (physical names of ``generation``), on a dedicated
    ``connection``; ``cursor`` is how far into the log those tables are up to date, and ``failure``
    what stopped it, if anything: a ``PoisonEvent``, or another error while writing its tables."""

    def __init__(
        self, projection: Projection, connection: Any, generation: int, *, use_fold: bool = True
    ) -> None:
        self.projection = projection
        self.connection = connection
        self.generation = generation
        self.tables = bookkeeping.tables_for(projection, generation)
        self.render = renderer(self.tables)
        self.cursor = LOG_START
        self.failure: Exception | None = None
        self.fold: Fold | None = projection.fold() if use_fold and isinstance(projection, Foldable) else None

    def _poison(self, event: RecordedEvent, error: BaseException) -> PoisonEvent:
        return PoisonEvent(self.projection.name, event, error)

    def fold_batch(self, batch: Sequence[RecordedEvent]) -> None:
        fold = self.fold
        assert fold is not None
        apply = fold.apply
        event = None
        try:
            for event in batch:
                apply(event)
        except Exception as error:
            assert event is not None
            raise self._poison(event, error) from error

    async def run_statements(self, batch: Sequence[RecordedEvent]) -> None:
        """Applies ``batch`` with statements in one transaction; raises ``PoisonEvent`` (having
        applied nothing) when one of its events cannot be applied."""
        per_event: list[Sequence[Statement]] = []
        poison: PoisonEvent | None = None
        for event in batch:
            try:
                per_event.append(self.projection.apply(event))
            except Exception as error:
                poison = self._poison(event, error)
                break
        if poison is not None:
            raise poison
        statements = [s for event_statements in per_event for s in event_statements]
        if not statements:
            return
        try:
            async with self.connection.transaction():
                await execute(self.connection, statements, self.render)
        except Exception as error:
            if not is_poison(error):
                raise
            raise await self._find_poison(batch, per_event, error) from error

    async def _find_poison(
        self,
        batch: Sequence[RecordedEvent],
        per_event: Sequence[Sequence[Statement]],
        error: BaseException,
    ) -> PoisonEvent:
        """Replays the failed batch event by event, in a transaction that is rolled back."""
        found = self._poison(batch[0], error)

        class _Found(Exception):
            pass

        with contextlib.suppress(_Found):
            async with self.connection.transaction():
                for event, statements in zip(batch, per_event, strict=True):
                    try:
                        async with self.connection.transaction():
                            await execute(self.connection, statements, self.render)
                    except Exception as event_error:
                        if not is_poison(event_error):
                            raise
                        found = self._poison(event, event_error)
                        break
                raise _Found
        return found

    async def flush_fold(self) -> None:
        """Writes the folded rows with COPY and continues in statement mode."""
        fold, self.fold = self.fold, None
        if fold is None:
            return
        for table, (columns, rows) in fold.tables().items():
            await self.connection.copy_records_to_table(
                self.tables[table], records=rows, columns=list(columns)
            )


class Builder:
    def __init__(
        self,
        source: LogSource,
        *,
        batch_size: int = BUILD_BATCH_SIZE,
        max_fold_rows: int = MAX_FOLD_ROWS,
    ) -> None:
        self._source = source
        self._batch_size = batch_size
        self._max_fold_rows = max_fold_rows

    async def build(
        self,
        targets: Sequence[BuildTarget],
        until: LogCursor | None = None,
        advance: Callable[[int], None] | None = None,
    ) -> LogCursor:
        """Creates the targets' tables and fills them from the start of the log up to ``until``
        (inclusive), or up to what the log holds now when ``until`` is None. Returns where it stopped;
        every target's ``cursor`` is there. ``advance(n)`` after each batch of n events applied."""
        for target in targets:
            await bookkeeping.create_tables(target.connection, target.projection, target.tables)
        started = time.perf_counter()
        cursor = await self._scan(targets, LOG_START, until, advance)
        healthy = [t for t in targets if t.failure is None]
        await _each(healthy, self._finish)
        for target in targets:
            if target.failure is None:
                target.cursor = cursor
        _log.info(
            "built %s up to %s in %.1fs",
            ", ".join(t.projection.name for t in targets),
            cursor,
            time.perf_counter() - started,
        )
        return cursor

    async def _scan(
        self,
        targets: Sequence[BuildTarget],
        after: LogCursor,
        until: LogCursor | None,
        advance: Callable[[int], None] | None = None,
    ) -> LogCursor:
        size = self._batch_size
        cursor = after
        pending: asyncio.Task[list[RecordedEvent]] | None = asyncio.ensure_future(
            self._source.read_all(cursor, size)
        )
        try:
            while pending is not None:
                batch = await pending
                pending = None
                if not batch:
                    break
                last = batch[-1].cursor
                done = len(batch) < size
                if until is not None and last >= until:
                    batch = [event for event in batch if event.cursor <= until]
                    done = True
                if not done:  # read the next batch while this one is applied
                    pending = asyncio.ensure_future(self._source.read_all(last, size))
                if batch:
                    await self._consume(targets, batch)
                    cursor = batch[-1].cursor
                    if advance is not None:
                        advance(len(batch))
        finally:
            if pending is not None:
                pending.cancel()
        return cursor

    @staticmethod
    async def _finish(target: BuildTarget) -> None:
        await target.flush_fold()
        await bookkeeping.create_indexes(target.connection, target.projection, target.tables)

    async def _consume(self, targets: Sequence[BuildTarget], batch: Sequence[RecordedEvent]) -> None:
        writing: list[BuildTarget] = []
        for target in targets:
            if target.failure is not None:
                continue
            fold = target.fold
            if fold is None:
                writing.append(target)
                continue
            try:
                target.fold_batch(batch)
            except PoisonEvent as poison:
                target.failure = poison
                continue
            if len(fold) > self._max_fold_rows:
                _log.info("%s: fold past %d rows, writing it out", target.projection.name, len(fold))
                await _each([target], self._finish)

        async def run(target: BuildTarget) -> None:
            await target.run_statements(batch)

        await _each(writing, run)

    async def catch_up(self, target: BuildTarget, until: LogCursor | None = None) -> None:
        """Applies, with statements, the events after ``target.cursor`` up to ``until`` (inclusive),
        or up to what the log holds now when ``until`` is None."""
        size = self._batch_size
        while until is None or target.cursor < until:
            batch = await self._source.read_all(target.cursor, size)
            if until is not None:
                batch = [event for event in batch if event.cursor <= until]
            if not batch:
                break
            await target.run_statements(batch)
            target.cursor = batch[-1].cursor
            if until is None and len(batch) < size:
                break
        if until is not None and target.cursor < until:
            raise RuntimeError(f"{target.projection.name}: the log ends at {target.cursor} before {until}")

    async def switch(self, target: BuildTarget, expected: bookkeeping.LiveState | None) -> LogCursor:
        """Makes ``target``'s tables live and drops the tables they replace.

        ``expected`` is the live state the build started from. While it holds the checkpoint row's
        lock, the switch applies whatever the live runner got to meanwhile, so the new tables are at
        (or past) the live checkpoint; past is fine: the runner notices the new generation and
        resumes from the new checkpoint. Raises ``RebuildConflict`` when the live state is no longer
        the expected one."""
        connection = target.connection
        name = target.projection.name
        if expected is not None:
            # Most of the catching up happens here, without holding the live runner up.
            for _ in range(10):
                live = await bookkeeping.load(connection, name)
                if live is None or target.cursor >= live.cursor:
                    break
                await self.catch_up(target, live.cursor)
        async with connection.transaction():
            live = await bookkeeping.load(connection, name, for_update=True)
            if not _same_live(live, expected):
                raise RebuildConflict(f"{name}: the live state changed during the build ({live})")
            if live is not None and target.cursor < live.cursor:
                await self.catch_up(target, live.cursor)
            cursor = max(target.cursor, live.cursor) if live is not None else target.cursor
            await bookkeeping.make_live(
                connection, target.projection, target.generation, target.tables, cursor, live
            )
        target.cursor = cursor
        if live is not None:
            replaced = [t for t in live.tables.values() if t not in target.tables.values()]
            await bookkeeping.drop_tables(connection, replaced)
        return cursor


async def _each(targets: Sequence[BuildTarget], work: Callable[[BuildTarget], Awaitable[None]]) -> None:
    """Runs ``work`` for every target concurrently (each on its own connection) and waits for all;
    a target whose work fails gets the error as its ``failure``, the others are not disturbed."""
    results = await asyncio.gather(*(work(t) for t in targets), return_exceptions=True)
    for target, result in zip(targets, results, strict=True):
        if isinstance(result, Exception):
            _log.warning("building %s failed: %s", target.projection.name, result)
            target.failure = result
        elif isinstance(result, BaseException):
            raise result


def _same_live(live: bookkeeping.LiveState | None, expected: bookkeeping.LiveState | None) -> bool:
    if live is None or expected is None:
        return live is None and expected is None
    return (live.version, live.generation, live.tables) == (
        expected.version,
        expected.generation,
        expected.tables,
    )
