"""The local Kafka broker process: :class:`LocalKafka`, from jars to a ready bootstrap address.

Owns the broker JVM's life cycle: resolving the classpath (via :mod:`.classpath`), writing the
configuration and formatting storage once per data dir (via :mod:`.broker_config`), starting
``kafka.Kafka``, waiting until it answers a metadata request through aiokafka, and stopping it
(SIGTERM, then SIGKILL after a timeout). Fault tests can stop and start the broker again on
the same ports and data, kill it, or freeze it with SIGSTOP.

Usable from synchronous code (pytest session fixtures) as is; from a running event loop, call
the blocking methods through ``asyncio.to_thread``.

Why one module of over 400 lines: it is one process's life cycle (start, readiness, the fault
controls that act on the same process handle and ports), whose parts share that state; the pieces
that stand alone (classpath, configuration, process spawning) already have modules of their own.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import IO, Final

from aiokafka.admin import AIOKafkaAdminClient

from services.kafka_local.broker_config import (
    HOST,
    BrokerLayout,
    new_cluster_id,
    pick_free_ports,
    port_is_free,
    write_config,
)
from services.kafka_local.classpath import class_data_archive, resolve_classpath
from services.kafka_local.errors import BrokerExitedError, KafkaLocalError, StartAbortedError
from services.kafka_local.process import run_tool, spawn_tied_to_process, tail

JAVA_OPTS_ENV: Final = "TOKENLEDGER_KAFKA_JAVA_OPTS"
CDS_ENV: Final = "TOKENLEDGER_KAFKA_CDS"  # "0" turns the class-data-sharing archive off
DEFAULT_HEAP: Final = "512m"
# The GC settings of Kafka's own kafka-run-class.sh.
_GC_OPTS: Final = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
)
_CDS_QUIET: Final = ("-Xlog:cds=off", "-Xlog:cds+dynamic=off")
_PORT_ATTEMPTS: Final = 3

_live: weakref.WeakSet[LocalKafka] = weakref.WeakSet()


def find_java() -> str:
    """``$JAVA_HOME/bin/java`` if present, else ``java`` from PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise KafkaLocalError("no Java runtime: install Java 17+ and put 'java' on PATH (or set JAVA_HOME)")
    return found


async def _accepts_tcp(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _answers_metadata(bootstrap: str) -> bool:
    """Whether the broker answers a DescribeCluster (metadata) request and lists itself."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="tokenledger-kafka-local-probe",
        request_timeout_ms=5000,
        retry_backoff_ms=50,
    )
    try:
        await asyncio.wait_for(admin.start(), timeout=10)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout=10)
    except Exception:  # not ready yet: connection refused, timeouts, broker-side errors
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    return bool(cluster.get("brokers"))


class LocalKafka:
    """One single-node KRaft broker on 127.0.0.1, run as a child JVM.

    ``port``/``controller_port``: fixed ports, or ``None`` to pick free ones at the first start
    (kept for later restarts). ``data_dir``: kept across runs if given; if ``None`` a temporary
    directory is created and removed again by :meth:`stop`.

    >>> with LocalKafka() as kafka:            # doctest: +SKIP
    ...     use(kafka.bootstrap_servers)       # "127.0.0.1:<port>"
    """

    def __init__(
        self,
        port: int | None = None,
        data_dir: Path | None = None,
        *,
        controller_port: int | None = None,
        heap: str = DEFAULT_HEAP,
        start_timeout_s: float = 120.0,
        stop_timeout_s: float = 30.0,
        cache_root: Path | None = None,
    ) -> None:
        for value in (port, controller_port):
            if value is not None and not 0 < value < 65536:
                raise ValueError(f"port must be in 1..65535, got {value}")
        if port is not None and port == controller_port:
            raise ValueError("port and controller_port must differ")
        self._port = port
        self._controller_port = controller_port
        self._ports_fixed = port is not None
        self._ports_used = False  # once a broker ran on them, ports never change
        self._owns_data_dir = data_dir is None
        self._data_dir = data_dir.expanduser().resolve() if data_dir is not None else None
        self._heap = heap
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._cache_root = cache_root
        self._classpath: list[Path] | None = None
        self._cds_archive: Path | None = None
        self._cds_dump: Path | None = None
        self._java: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._jvm_out: IO[bytes] | None = None
        self._paused = False
        self._abort = threading.Event()
        self._lock = threading.RLock()

    # -- properties ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise KafkaLocalError("the broker has not been started yet")
        return self._port

    @property
    def controller_port(self) -> int:
        if self._controller_port is None:
            raise KafkaLocalError("the broker has not been started yet")
        return self._controller_port

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:<port>``, valid after the first :meth:`start`."""
        return f"{HOST}:{self.port}"

    @property
    def data_dir(self) -> Path:
        if self._data_dir is None:
            raise KafkaLocalError("the broker has not been started yet")
        return self._data_dir

    @property
    def layout(self) -> BrokerLayout:
        return BrokerLayout(self.data_dir)

    @property
    def pid(self) -> int | None:
        """The broker JVM's pid while it runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def poll(self) -> int | None:
        """The JVM's exit code if it has exited, else ``None`` (also ``None`` when never started)."""
        proc = self._proc
        return None if proc is None else proc.poll()

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the broker log, plus any JVM output (crash messages)."""
        if self._data_dir is None:
            return ""
        parts = [tail(self.layout.broker_log, lines)]
        jvm = tail(self.layout.jvm_output, 20)
        if jvm.strip():
            parts.append(f"--- JVM output ({self.layout.jvm_output}) ---\n{jvm}")
        return "\n".join(part for part in parts if part)

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> str:
        """Fetch the jars if needed, then start the broker; return the bootstrap address."""
        with self._lock:
            try:
                if self._data_dir is None:
                    self._data_dir = Path(tempfile.mkdtemp(prefix="tokenledger-kafka-")).resolve()
                if self._java is None:
                    self._java = find_java()
                if self._classpath is None:
                    self._classpath = resolve_classpath(root=self._cache_root, abort=self._abort)
                    if os.environ.get(CDS_ENV, "1") != "0":
                        self._cds_archive = class_data_archive(self._classpath, self._java, self._cache_root)
                return self._start_broker()
            finally:
                self._abort.clear()  # an abort_start() counts for the start under way (or the next)

    def start_broker(self) -> str:
        """(Re)start the broker JVM on the same ports and data dir; block until it is ready."""
        if self._classpath is None or self._java is None:
            return self.start()
        with self._lock:
            try:
                return self._start_broker()
            finally:
                self._abort.clear()

    def _start_broker(self) -> str:
        if self._proc is not None and self._proc.poll() is None:
            return self.bootstrap_servers
        attempts = 1 if (self._ports_fixed or self._ports_used) else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            if self._abort.is_set():
                raise StartAbortedError("start aborted")
            self._choose_ports(fresh=attempt > 1)
            try:
                self._launch()
                self._wait_ready()
            except BrokerExitedError as exc:
                self._reap()
                if attempt < attempts and "Address already in use" in exc.log_tail:
                    continue  # lost a race for an auto-picked port: pick others
                raise
            except BaseException:
                self._reap(kill=True)
                raise
            self._ports_used = True
            _live.add(self)
            return self.bootstrap_servers
        raise AssertionError("unreachable")

    def stop_broker(self, timeout_s: float | None = None) -> None:
        """Stop the JVM: SIGTERM (controlled shutdown), then SIGKILL after ``timeout_s``."""
        with self._lock:
            proc = self._proc
            if proc is not None and proc.poll() is None:
                if self._paused:
                    os.kill(proc.pid, signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=self._stop_timeout_s if timeout_s is None else timeout_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            self._reap()

    def kill_broker(self) -> None:
        """SIGKILL the JVM (a crash, for fault tests); the data dir is kept."""
        with self._lock:
            self._reap(kill=True)

    def pause(self) -> None:
        """Freeze the JVM (SIGSTOP): connections stay open but nothing is answered."""
        with self._lock:
            pid = self.pid
            if pid is None:
                raise KafkaLocalError("the broker is not running")
            os.kill(pid, signal.SIGSTOP)
            self._paused = True

    def resume(self) -> None:
        """Undo :meth:`pause` (SIGCONT)."""
        with self._lock:
            pid = self.pid
            if pid is not None:
                os.kill(pid, signal.SIGCONT)
            self._paused = False

    def stop(self) -> None:
        """Stop the broker; remove the data dir if it is a temporary one this object created."""
        with self._lock:
            self.stop_broker()
            _live.discard(self)
            if self._owns_data_dir and self._data_dir is not None:
                shutil.rmtree(self._data_dir, ignore_errors=True)
                self._data_dir = None

    def abort_start(self) -> None:
        """Make a :meth:`start` running in another thread give up (thread- and signal-safe)."""
        self._abort.set()

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals ----------------------------------------------------------------------------

    def _choose_ports(self, *, fresh: bool) -> None:
        if fresh and not self._ports_fixed:
            self._port = None
            self._controller_port = None
        if self._port is None:
            exclude = frozenset({self._controller_port} if self._controller_port else ())
            self._port = pick_free_ports(1, exclude)[0]
        if self._controller_port is None:
            self._controller_port = pick_free_ports(1, frozenset({self._port}))[0]
        for port in (self._port, self._controller_port):
            if not port_is_free(port):
                raise KafkaLocalError(f"port {HOST}:{port} is in use; cannot start the broker there")

    def _java_argv(self, jvm_opts: list[str], *main: str) -> list[str]:
        assert self._java is not None and self._classpath is not None
        layout = self.layout
        return [
            self._java,
            *jvm_opts,
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={layout.log4j_config}",
            f"-Dkafka.logs.dir={layout.data_dir}",
            "-cp",
            os.pathsep.join(str(jar) for jar in self._classpath),
            *main,
        ]

    def _launch(self) -> None:
        layout = self.layout
        write_config(layout, self.port, self.controller_port)
        if not layout.is_formatted():
            # No meta.properties: nothing Kafka could start from, but maybe the debris of a format
            # that was interrupted; start from an empty log dir.
            shutil.rmtree(layout.log_dirs, ignore_errors=True)
            layout.log_dirs.mkdir(parents=True)
            archive = self._cds_archive
            use_archive = archive is not None and archive.is_file()
            run_tool(
                self._java_argv(
                    [f"-XX:SharedArchiveFile={archive}", *_CDS_QUIET] if use_archive else [],
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    new_cluster_id(),
                    "-c",
                    str(layout.server_properties),
                ),
                what="kafka-storage format",
                timeout_s=120,
                abort=self._abort,
                cwd=layout.data_dir,
            )
        jvm_opts = [f"-Xmx{self._heap}", f"-Xms{self._heap}", *_GC_OPTS, *self._cds_options()]
        jvm_opts += shlex.split(os.environ.get(JAVA_OPTS_ENV, ""))
        argv = self._java_argv(jvm_opts, "kafka.Kafka", str(layout.server_properties))
        self._jvm_out = layout.jvm_output.open("wb")  # this run's JVM output only
        self._paused = False
        self._proc = spawn_tied_to_process(argv, self._jvm_out, layout.data_dir)

    def _cds_options(self) -> list[str]:
        """Use the AppCDS archive, or have this run write it when the JVM exits cleanly.

        Loading Kafka's ~10k classes from the archive instead of 45 jars takes about half the
        start-up time; the dump costs a few seconds once, at the first clean stop.
        """
        archive = self._cds_archive
        self._cds_dump = None
        if archive is None:
            return []
        if archive.is_file():
            return [f"-XX:SharedArchiveFile={archive}", *_CDS_QUIET]
        for stale in archive.parent.glob(f".{archive.name}.*.tmp"):  # left by killed runs
            with contextlib.suppress(OSError):
                if time.time() - stale.stat().st_mtime > 3600:
                    stale.unlink()
        self._cds_dump = archive.with_name(f".{archive.name}.{os.getpid()}.{id(self)}.tmp")
        return [f"-XX:ArchiveClassesAtExit={self._cds_dump}", *_CDS_QUIET]

    def _keep_cds_dump(self, returncode: int) -> None:
        dump, archive = self._cds_dump, self._cds_archive
        self._cds_dump = None
        if dump is None or archive is None:
            return
        # The JVM writes the archive while exiting; 143 is its exit code after SIGTERM.
        if returncode in (0, 143) and dump.is_file() and dump.stat().st_size > 0:
            os.replace(dump, archive)
        else:
            dump.unlink(missing_ok=True)

    def _wait_ready(self) -> None:
        """Block until the broker answers metadata requests (runs its own event loop in a thread)."""
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + self._start_timeout_s
        errors: list[BaseException] = []

        async def wait() -> None:
            while True:
                returncode = proc.poll()
                if returncode is not None:
                    raise BrokerExitedError(returncode, self.log_tail())
                if self._abort.is_set():
                    raise StartAbortedError("start aborted")
                if time.monotonic() > deadline:
                    raise KafkaLocalError(
                        f"Kafka broker not ready after {self._start_timeout_s:.0f} s; "
                        f"last broker log lines:\n{self.log_tail()}"
                    )
                if await _accepts_tcp(HOST, self.port) and await _answers_metadata(self.bootstrap_servers):
                    return
                await asyncio.sleep(0.1)

        def run() -> None:
            try:
                asyncio.run(wait())
            except BaseException as exc:
                errors.append(exc)

        waiter = threading.Thread(target=run, name="kafka-local-ready-wait", daemon=True)
        waiter.start()
        waiter.join()
        if errors:
            raise errors[0]

    def _reap(self, *, kill: bool = False) -> None:
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                if kill:
                    if self._paused:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(proc.pid, signal.SIGCONT)
                    proc.kill()
                proc.wait()
            self._keep_cds_dump(proc.returncode)
            self._proc = None
        self._paused = False
        if self._jvm_out is not None:
            self._jvm_out.close()
            self._jvm_out = None


@atexit.register
def _stop_leftovers() -> None:
    """Stop brokers the program forgot, cleanly where possible (PDEATHSIG covers hard deaths)."""
    for kafka in list(_live):
        with contextlib.suppress(Exception):
            kafka.stop_broker(timeout_s=10)
            kafka.stop()
