"""``tokenledger serve --processes N``: one node as N HTTP processes under a supervisor.

The supervisor binds the port once, opens the database once (starting the embedded PostgreSQL and
migrating, so the children never race for either), then forks N children that accept on the one
inherited socket: the kernel hands each connection to whichever child accepts first, so a busy child
takes fewer. Each child is a whole ``serve`` (``services.serve``) with its own pool, verifier and
verifier cache, log notifications and usage recorder. Child 0 also runs the workers the settings name
(projection runners, scheduler with the sealer and housekeeping, relay): once per node, as in one
process today; the others run none and wait on the checkpoints child 0 advances (the read barrier
polls them when its runners are elsewhere), so read-your-writes holds whichever child answers.

Metrics: with N > 1 every child must write to one ``PROMETHEUS_MULTIPROC_DIR``; when the operator set
none, the supervisor makes a fresh one for the node's lifetime (set before anything imports
``prometheus_client``, which reads it at import) and removes it at the end.

Lifetime: SIGTERM or SIGINT is passed to every child, which finishes its in-flight requests; a child
still running after the grace period is killed. A child that exits on its own (a crash) is forked
again after a back-off that doubles while it keeps failing quickly; its live gauges are dropped. A
child dies with the supervisor (``PR_SET_PDEATHSIG`` on Linux): a killed node stops serving at once.
With N = 1 there is no supervisor: the one process serves as it always has.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from multiprocessing.process import BaseProcess
from types import FrameType

import msgspec

from services.config import Settings

_log = logging.getLogger(__name__)

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"  # services.metrics.MULTIPROC_DIR, not imported: see above
NODE_POOL_CONNECTIONS = 40
"""Pool connections of one node, shared out among its processes (each gets 5 to 20)."""
RESTART_FIRST_SECONDS = 0.5
RESTART_LAST_SECONDS = 30.0
STEADY_SECONDS = 30.0
"""A child that ran this long before exiting is restarted after the first delay again."""
KILL_MARGIN_SECONDS = 10.0
_PR_SET_PDEATHSIG = 1


def default_processes() -> int:
    """The number of cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def pool_size_for(processes: int) -> int:
    return min(20, max(5, NODE_POOL_CONNECTIONS // processes))


def run_node(settings: Settings, host: str, port: int, processes: int) -> int:
    """Serves until SIGTERM or SIGINT with ``processes`` HTTP processes; the exit code."""
    if processes == 1:
        from services.serve import listen, serve

        return asyncio.run(serve(settings, listen(host, port)))
    with _metrics_directory():
        from services import database
        from services.serve import listen

        sock = listen(host, port)
        try:
            dsn = asyncio.run(database.open_database(settings.database_url, settings.data_dir))
            children = msgspec.structs.replace(
                settings, database_url=dsn, embedded_database=settings.database_url is None
            )
            node = Supervisor(children, sock, processes)
            return node.run()
        finally:
            sock.close()


@contextlib.contextmanager
def _metrics_directory() -> Iterator[None]:
    if os.environ.get(MULTIPROC_DIR):
        yield
        return
    directory = tempfile.mkdtemp(prefix="tokenledger-metrics-")
    os.environ[MULTIPROC_DIR] = directory
    try:
        yield
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class _Slot:
    """One child's place: the process in it now and how soon it may be forked again."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: BaseProcess | None = None
        self.started = 0.0
        self.delay = RESTART_FIRST_SECONDS
        self.restart_at: float | None = None
        self.exit_code: int | None = None


class Supervisor:
    """Forks, watches, restarts and stops the children of one node (see the module docstring)."""

    def __init__(self, settings: Settings, sock: socket.socket, processes: int) -> None:
        self._settings = settings
        self._sock = sock
        self._slots = [_Slot(index) for index in range(processes)]
        self._pool_size = pool_size_for(processes)
        self._stopping = False
        self._context = multiprocessing.get_context("fork")

    def run(self) -> int:
        wake_reader, wake_writer = socket.socketpair()
        wake_writer.setblocking(False)
        previous_wakeup = signal.set_wakeup_fd(wake_writer.fileno())
        previous = {signum: signal.signal(signum, self._stop) for signum in (signal.SIGTERM, signal.SIGINT)}
        try:
            for slot in self._slots:
                self._fork(slot)
            while not self._stopping:
                self._watch(wake_reader)
            return self._stop_children()
        finally:
            signal.set_wakeup_fd(previous_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            wake_reader.close()
            wake_writer.close()

    def _stop(self, _signum: int, _frame: FrameType | None) -> None:
        self._stopping = True

    def _fork(self, slot: _Slot) -> None:
        settings = self._settings
        if slot.index > 0:
            settings = msgspec.structs.replace(settings, workers=frozenset())
        process = self._context.Process(
            target=_child,
            args=(settings, self._sock, self._pool_size),
            name=f"tokenledger-http-{slot.index}",
        )
        process.start()
        slot.process, slot.started, slot.restart_at = process, time.monotonic(), None
        _log.info("HTTP process %d started (pid %s)", slot.index, process.pid)

    def _watch(self, wake_reader: socket.socket) -> None:
        now = time.monotonic()
        due = [slot.restart_at for slot in self._slots if slot.restart_at is not None]
        timeout = max(0.0, min(due) - now) if due else None
        running = {slot.process.sentinel: slot for slot in self._slots if slot.process is not None}
        ready = multiprocessing.connection.wait([wake_reader, *running], timeout)
        if wake_reader in ready:
            with contextlib.suppress(BlockingIOError):
                wake_reader.recv(4096)
        for sentinel, slot in running.items():
            if sentinel in ready:
                self._ended(slot)
        now = time.monotonic()
        for slot in self._slots:
            if not self._stopping and slot.restart_at is not None and slot.restart_at <= now:
                self._fork(slot)

    def _ended(self, slot: _Slot) -> None:
        """A child exited on its own: forget its live gauges and plan its restart."""
        from services import metrics

        process, slot.process = slot.process, None
        assert process is not None
        process.join()
        slot.exit_code = process.exitcode
        if process.pid is not None:
            metrics.forget_process(process.pid)
        if self._stopping:
            return
        lived = time.monotonic() - slot.started
        slot.delay = RESTART_FIRST_SECONDS if lived >= STEADY_SECONDS else slot.delay
        _log.warning(
            "HTTP process %d (pid %s) exited with %s after %.1fs; starting it again in %.1fs",
            slot.index, process.pid, process.exitcode, lived, slot.delay,
        )  # fmt: skip
        slot.restart_at = time.monotonic() + slot.delay
        slot.delay = min(slot.delay * 2, RESTART_LAST_SECONDS)

    def _stop_children(self) -> int:
        from services import metrics
        from services.serve import SHUTDOWN_GRACE_SECONDS

        _log.info("stopping %d HTTP processes", len(self._slots))
        living = [slot for slot in self._slots if slot.process is not None]
        for slot in living:
            assert slot.process is not None and slot.process.pid is not None
            with contextlib.suppress(ProcessLookupError):
                os.kill(slot.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS + KILL_MARGIN_SECONDS
        exit_code = 0
        for slot in living:
            process = slot.process
            assert process is not None
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                _log.warning("HTTP process %d did not stop in time: killed", slot.index)
                process.kill()
                process.join()
            if process.pid is not None:
                metrics.forget_process(process.pid)
            exit_code = exit_code or (0 if process.exitcode == 0 else 1)
        return exit_code


def _die_with_parent() -> None:
    """The child is killed when the supervisor dies, however it dies (Linux)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _child(settings: Settings, sock: socket.socket, pool_size: int) -> None:
    """The body of one child: a whole ``serve`` on the inherited socket; exits with its code."""
    _die_with_parent()
    if os.getppid() == 1:  # the supervisor died before the line above took effect
        os._exit(1)
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from services.operator_errors import explain
    from services.serve import serve

    try:
        exit_code = asyncio.run(serve(settings, sock, pool_size=pool_size))
    except Exception as error:
        line = explain(error)
        if line is None:
            raise
        _log.error("%s", line)
        exit_code = 1
    sys.exit(exit_code)
