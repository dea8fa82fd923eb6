"""Building projections: the start-up builds of a process's runners, together, and ``rebuild``.

At start-up the runners that need a build are built together, from one scan of the log: each runner
that holds its lock either says it needs no build (``settled``) or asks for one (``build``); once
every runner has spoken, the requested builds run from one scan (``projections.build.Builder``) and
each runner's request is answered. ``rebuild`` builds live projections again into fresh tables and
switches them while their runners keep serving the old ones.
"""

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from events import LogCursor
from projections import bookkeeping
from projections.base import LogSource, Projection
from projections.build import Builder, BuildTarget
from projections.naming import LOCK_CLASS_BUILD, lock_key
from projections.runner import Connections, ProjectionRunner


class ProjectionNotLive(RuntimeError):
    """A rebuild needs the projection to be live at this code's version."""


class Builds:
    """The builds of one process's runners (they reach it as their ``StartupBuilds``)."""

    def __init__(self, source: LogSource, connections: Connections, *, batch_size: int) -> None:
        self._connections = connections
        self._builder = Builder(source, batch_size=batch_size)
        self._startup_waiting: set[str] = set()
        self._build_requests: list[tuple[ProjectionRunner, Any, asyncio.Future[None]]] = []
        self._build_tasks: set[asyncio.Task[None]] = set()

    def expect(self, names: Iterable[str]) -> None:
        """The runners about to start: their start-up builds wait until each has spoken."""
        self._startup_waiting = set(names)

    def cancel(self) -> None:
        """Cancels the start-up builds under way (their runners are being stopped)."""
        for task in list(self._build_tasks):
            task.cancel()

    async def drain(self) -> None:
        """Waits for the cancelled start-up builds to end."""
        for task in list(self._build_tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def settled(self, name: str) -> None:
        """A runner no longer needs (or has asked for) its start-up build: once every runner has
        said so, the requested builds run together, from one scan of the log."""
        self._startup_waiting.discard(name)
        if not self._startup_waiting and self._build_requests:
            requests, self._build_requests = self._build_requests, []
            task = asyncio.create_task(self._build_together(requests), name="projection-build")
            self._build_tasks.add(task)
            task.add_done_callback(self._build_tasks.discard)

    async def build(self, runner: ProjectionRunner, connection: Any) -> None:
        """Builds ``runner``'s version and makes it live (called by the runner holding its lock)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._build_requests.append((runner, connection, done))
        self.settled(runner.name)
        await done

    async def _build_together(
        self, requests: list[tuple[ProjectionRunner, Any, asyncio.Future[None]]]
    ) -> None:
        """Builds the requesting runners' versions from one scan and switches each to it; each
        runner's future says how its own build went. The futures are resolved last, once nothing
        uses the runners' connections any more."""
        outcomes: dict[int, Exception | None] = {}
        locked: list[tuple[Any, str]] = []
        try:
            targets: list[tuple[int, BuildTarget, bookkeeping.LiveState | None]] = []
            for index, (runner, connection, _) in enumerate(requests):
                projection = runner.projection
                await connection.execute(
                    "SELECT pg_advisory_lock($1, $2)", LOCK_CLASS_BUILD, lock_key(projection.name)
                )
                locked.append((connection, projection.name))
                live = await bookkeeping.load(connection, projection.name)
                await bookkeeping.drop_tables(
                    connection, await bookkeeping.stray_tables(connection, projection, live)
                )
                if bookkeeping.needs_build(live, projection):
                    targets.append((index, BuildTarget(projection, connection, 0), live))
                else:
                    outcomes[index] = None  # built meanwhile
            if targets:
                await self._builder.build([target for _, target, _ in targets])
            for index, target, live in targets:
                if target.failure is not None:
                    outcomes[index] = target.failure
                    continue
                try:
                    await self._builder.catch_up(target)
                    await self._builder.switch(target, live)
                except Exception as error:
                    outcomes[index] = error
                else:
                    outcomes[index] = None
        except Exception as error:
            for index in range(len(requests)):
                outcomes.setdefault(index, error)
        finally:
            for connection, name in locked:
                with contextlib.suppress(Exception):
                    await connection.execute(
                        "SELECT pg_advisory_unlock($1, $2)", LOCK_CLASS_BUILD, lock_key(name)
                    )
            for index, (_, _, done) in enumerate(requests):
                if done.done():
                    continue
                if index not in outcomes:
                    done.cancel()
                elif (outcome := outcomes[index]) is not None:
                    done.set_exception(outcome)
                else:
                    done.set_result(None)

    async def rebuild(
        self, projections: Sequence[Projection], advance: Callable[[int], None] | None = None
    ) -> dict[str, LogCursor]:
        """Rebuilds ``projections`` into fresh tables, from one scan
        of the log up to a fixed ceiling (the newest of their live checkpoints at the start), then
        catches each up to its live checkpoint and switches it, while the live runners (in this
        process or another) keep serving the old tables until their switch. Returns the cursor each
        projection was switched at. Raises (after switching the others) ``PoisonEvent`` when an event
        poisons a projection, ``RebuildConflict`` when its live state changed meanwhile; the tables of
        a rebuild that was not switched are dropped."""
        connections: list[Any] = []
        targets: list[tuple[BuildTarget, bookkeeping.LiveState]] = []
        switched: dict[str, LogCursor] = {}
        failure: Exception | None = None
        try:
            for projection in projections:
                connection = await self._connections.open()
                connections.append(connection)
                await connection.execute(
                    "SELECT pg_advisory_lock($1, $2)", LOCK_CLASS_BUILD, lock_key(projection.name)
                )
                live = await bookkeeping.load(connection, projection.name)
                if live is None or bookkeeping.needs_build(live, projection):
                    raise ProjectionNotLive(
                        f"{projection.name} is not live at version {projection.version} yet"
                    )
                await bookkeeping.drop_tables(
                    connection, await bookkeeping.stray_tables(connection, projection, live)
                )
                targets.append((BuildTarget(projection, connection, live.generation + 1), live))
            ceiling = max(live.cursor for _, live in targets)
            await self._builder.build([target for target, _ in targets], until=ceiling, advance=advance)
            for target, live in targets:
                try:
                    if target.failure is not None:
                        raise target.failure
                    switched[target.projection.name] = await self._builder.switch(target, live)
                except Exception as error:
                    failure = failure or error
            if failure is not None:
                raise failure
            return switched
        finally:
            for target, _ in targets:
                if target.projection.name not in switched:
                    with contextlib.suppress(Exception):
                        await bookkeeping.drop_tables(target.connection, target.tables.values())
            for connection in connections:
                await self._connections.close(connection)
