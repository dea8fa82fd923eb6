"""Child-process plumbing for the local Kafka broker: spawning, helper runs, log tails.

Owns: starting the broker JVM so that it dies with us (``prctl(PR_SET_PDEATHSIG, SIGKILL)`` on
Linux, issued from a thread that lives as long as the process), running short helper processes
(Maven, the storage formatter) with their output captured, and reading the tail of log files.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Final

from services.kafka_local.errors import KafkaLocalError, StartAbortedError

_PR_SET_PDEATHSIG: Final = 1
_prctl: Callable[..., int] | None = None
_spawner: concurrent.futures.ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


def _load_prctl() -> Callable[..., int] | None:
    """Look up libc's prctl before forking (a forked child must not load libraries)."""
    global _prctl
    if _prctl is None and sys.platform == "linux":
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        _prctl = libc.prctl
    return _prctl


def _die_with_parent_hook(parent_pid: int) -> Callable[[], None]:
    prctl = _load_prctl()

    def preexec() -> None:  # runs in the child between fork and exec
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _spawn_here(argv: Sequence[str], stdout: IO[bytes], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - argv built by us, no shell
        list(argv),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        # Own session: a terminal's Ctrl-C reaches only us, and we stop the broker in order.
        start_new_session=True,
        preexec_fn=_die_with_parent_hook(os.getpid()),
    )


def spawn_tied_to_process(argv: Sequence[str], stdout: IO[bytes], cwd: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` so that it is SIGKILLed if this Python process dies.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not the process. So
    when called off the main thread (e.g. via ``asyncio.to_thread``), the fork happens on a
    dedicated long-lived thread instead of on a pool worker that may go away.
    """
    if threading.current_thread() is threading.main_thread():
        return _spawn_here(argv, stdout, cwd)
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="kafka-local-spawner"
            )
        executor = _spawner
    return executor.submit(_spawn_here, argv, stdout, cwd).result()


def run_tool(
    argv: Sequence[str],
    *,
    what: str,
    timeout_s: float,
    abort: threading.Event | None = None,
    cwd: Path | None = None,
) -> str:
    """Run a short helper process with its output captured; return that output.

    Raises :class:`KafkaLocalError` (with the output) when it fails or times out, and
    :class:`StartAbortedError` when ``abort`` is set while it runs (the process is killed).
    """
    proc = subprocess.Popen(  # noqa: S603 - argv built by us, no shell
        list(argv),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    stream = proc.stdout
    assert stream is not None
    chunks: list[bytes] = []

    def pump() -> None:
        while chunk := stream.read(65536):
            chunks.append(chunk)

    reader = threading.Thread(target=pump, name="kafka-local-tool-output", daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            if abort is not None and abort.is_set():
                raise StartAbortedError(f"{what} aborted")
            if time.monotonic() > deadline:
                raise KafkaLocalError(f"{what} did not finish within {timeout_s:.0f} s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)
        stream.close()
    output = b"".join(chunks).decode("utf-8", "replace")
    if proc.returncode != 0:
        raise KafkaLocalError(f"{what} failed with exit code {proc.returncode}:\n{output[-8000:]}")
    return output


def tail(path: Path, lines: int = 60, max_bytes: int = 256 * 1024) -> str:
    """The last ``lines`` lines of a text file ('' if it does not exist)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except FileNotFoundError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])
