"""The service's Prometheus metrics: every metric it exposes, the bounded label values they take,
and the exposition (``render``), for one process or for several.

Every label takes values from a set fixed by the code: a route template (never a path: a request
no route matches is ``unmatched``), an HTTP method among the standard ones (else ``other``), a
status code, a command's type tag, an outcome or reason name, a projection or relay name. No
secret, token id, account id or name, and nothing a client typed, is ever a label value.

**Several processes** (``serve`` with several HTTP processes, or workers run apart on one host):
start every process with ``PROMETHEUS_MULTIPROC_DIR`` naming one empty directory shared by them
(emptied before they start). prometheus-client then keeps each process's values in memory-mapped
files there, and ``render`` aggregates them all: counters and histograms are summed, the gauges
of one process's own state (its pool, its usage-log buffer) are summed over live processes, and
the gauges sampled from the database (lags) keep the most recent sample. A process that ends calls
``forget_process`` so its live gauges stop counting. Without the variable, the process's own
registry is exposed.

Metrics whose value lives in the database (projection and relay lag) are sampled when scraped
(``services.api.metrics``); the gauges of a process's own resources are sampled every few seconds
by ``ProcessGauges`` so that every process's share is current whichever one is scraped.
"""

import os
from collections.abc import Callable, Sequence
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from follower.worker import BackgroundTask, periodically
from services.commands import DomainError
from services.config import ConfigError

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
UNMATCHED_ROUTE = "unmatched"
OTHER_METHOD = "other"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SAMPLE_SECONDS = 5.0


def _check_shared_directory() -> None:
    """A ``PROMETHEUS_MULTIPROC_DIR`` that is not a writable directory is a configuration error,
    said before the first metric tries to open its file there."""
    directory = os.environ.get(MULTIPROC_DIR)
    if directory and not (os.path.isdir(directory) and os.access(directory, os.W_OK)):
        raise ConfigError(f"{MULTIPROC_DIR}: {directory!r} is not a writable directory")


_check_shared_directory()

# -- HTTP ---------------------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "tokenledger_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ("route", "method", "status"),
)
HTTP_LATENCY = Histogram(
    "tokenledger_http_request_duration_seconds",
    "Time from a request's arrival to its answer, by route template and method.",
    ("route", "method"),
)

# -- commands -----------------------------------------------------------------------------------

COMMANDS = Counter(
    "tokenledger_commands",
    "Commands dispatched, by type and outcome (ok, or the refusal's kind, or error).",
    ("command", "outcome"),
)
COMMAND_LATENCY = Histogram(
    "tokenledger_command_duration_seconds",
    "Time a command took in the dispatcher, authorisation to outcome.",
    ("command",),
)

# -- token verification -------------------------------------------------------------------------

VERIFICATIONS = Counter(
    "tokenledger_verifications",
    "Token verifications, by outcome (accepted, rejected) and rejection reason (none when accepted).",
    ("outcome", "reason"),
)
VERIFIER_CACHE = Counter(
    "tokenledger_verifier_cache_lookups",
    "Verifier cache lookups of well-formed secrets, by result (hit, miss).",
    ("result",),
)

# -- read models and followers ------------------------------------------------------------------

PROJECTION_LAG_EVENTS = Gauge(
    "tokenledger_projection_lag_events",
    "Events in the log after the projection's checkpoint.",
    ("projection",),
    multiprocess_mode="mostrecent",
)
PROJECTION_LAG_SECONDS = Gauge(
    "tokenledger_projection_lag_seconds",
    "Age of the oldest event after the projection's checkpoint (0 when current).",
    ("projection",),
    multiprocess_mode="mostrecent",
)
RELAY_LAG_EVENTS = Gauge(
    "tokenledger_relay_lag_events",
    "Events in the log after the Kafka relay's checkpoint.",
    ("relay",),
    multiprocess_mode="mostrecent",
)
RELAY_LAG_SECONDS = Gauge(
    "tokenledger_relay_lag_seconds",
    "Age of the oldest event the Kafka relay has not had acknowledged (0 when current).",
    ("relay",),
    multiprocess_mode="mostrecent",
)
RELAY_PUBLISHED = Counter(
    "tokenledger_relay_published_events", "Log events acknowledged by Kafka (checkpoint moved past)."
)
RELAY_ERRORS = Counter(
    "tokenledger_relay_publish_errors",
    "Kafka relay failures, by reason (send_timeout: Kafka took no record; session_failed: the "
    "relay's session ended on an error and restarts from its checkpoint).",
    ("reason",),
)

# -- scheduler ----------------------------------------------------------------------------------

SCHEDULER_BACKLOG = Gauge(
    "tokenledger_scheduler_backlog",
    "Deadlines found due by the running tick and not yet emitted (0 between ticks).",
    multiprocess_mode="livemax",
)
SCHEDULER_LATENESS = Histogram(
    "tokenledger_scheduler_lateness_seconds",
    "How long after its deadline an event was appended, by deadline kind.",
    ("kind",),
    buckets=(0.1, 0.5, 1, 2.5, 5, 15, 30, 60, 300, 900, 3600),
)

# -- usage log ----------------------------------------------------------------------------------

USAGE_BUFFERED = Gauge(
    "tokenledger_usage_log_buffered_rows",
    "Usage-log rows held in memory, waiting to be stored.",
    multiprocess_mode="livesum",
)
USAGE_FLUSH_LATENCY = Histogram(
    "tokenledger_usage_log_flush_duration_seconds", "Time to store one batch of usage-log rows."
)
USAGE_STORED = Counter("tokenledger_usage_log_stored_rows", "Usage-log rows stored.")
USAGE_DROPPED = Counter(
    "tokenledger_usage_log_dropped_rows", "Usage-log rows dropped (the oldest) because the buffer was full."
)
USAGE_SET_ASIDE = Counter(
    "tokenledger_usage_log_set_aside_rows",
    "Usage-log rows the database refused for their content, set aside so the rows behind them are stored.",
)
USAGE_FLUSH_ERRORS = Counter(
    "tokenledger_usage_log_flush_errors", "Usage-log batches the database failed to store (retried)."
)

# -- event store and database -------------------------------------------------------------------

APPEND_LATENCY = Histogram(
    "tokenledger_eventstore_append_duration_seconds",
    "Time of one atomic append to the event log, by result (ok, refused: a conflict or an invalid "
    "append the store answered; error: anything else).",
    ("result",),
)
POOL_CONNECTIONS = Gauge(
    "tokenledger_db_pool_connections",
    "Connections of the process's database pool, by state (in_use, idle).",
    ("state",),
    multiprocess_mode="livesum",
)
POOL_MAX = Gauge(
    "tokenledger_db_pool_max_connections",
    "The most connections the process's database pool opens.",
    multiprocess_mode="livesum",
)


def method_label(method: str) -> str:
    return method if method in METHODS else OTHER_METHOD


def outcome_label(error: BaseException | None) -> str:
    """``ok``, or the snake_case name of the refusal's class (the command side's own, a fixed set:
    ``not_found``, ``conflict``, ``missing_right``...), or ``error`` for any other exception."""
    if error is None:
        return "ok"
    if not isinstance(error, DomainError):
        return "error"
    name = type(error).__name__
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def observe_command(command_type: str, error: BaseException | None, seconds: float) -> None:
    """The dispatcher's ``CommandObserver``: one dispatched command, its outcome and duration."""
    COMMANDS.labels(command_type, outcome_label(error)).inc()
    COMMAND_LATENCY.labels(command_type).observe(seconds)


def render(path: str | None = None) -> bytes:
    """The exposition in the Prometheus text format: of every process sharing ``path`` (default:
    ``PROMETHEUS_MULTIPROC_DIR``) when there is one, else of this process."""
    directory = path or os.environ.get(MULTIPROC_DIR)
    if not directory:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def forget_process(pid: int | None = None) -> None:
    """Drops this (or ``pid``'s) live gauges from the shared directory; nothing without one."""
    directory = os.environ.get(MULTIPROC_DIR)
    if directory:
        multiprocess.mark_process_dead(pid if pid is not None else os.getpid(), directory)  # type: ignore[no-untyped-call]


class PoolSizes(Protocol):
    """What ``sample_pool`` reads of a connection pool (asyncpg's)."""

    def get_size(self) -> int: ...
    def get_idle_size(self) -> int: ...
    def get_max_size(self) -> int: ...


def sample_pool(pool: PoolSizes) -> None:
    size, idle = pool.get_size(), pool.get_idle_size()
    POOL_CONNECTIONS.labels("in_use").set(size - idle)
    POOL_CONNECTIONS.labels("idle").set(idle)
    POOL_MAX.set(pool.get_max_size())


class ProcessGauges:
    """Samples the gauges of this process's own resources every ``interval`` seconds
    (``start``/``stop``), so that each process's share is current in a multi-process exposition.
    A sampler only reads what the process holds in memory (no I/O)."""

    def __init__(self, samplers: Sequence[Callable[[], None]], interval: float = SAMPLE_SECONDS) -> None:
        self._samplers = tuple(samplers)
        self._task = BackgroundTask(
            "metrics-process-gauges",
            lambda: periodically(
                self._round, what="sampling the process gauges", interval=interval, at_start=True
            ),
        )

    def sample(self) -> None:
        for sampler in self._samplers:
            sampler()

    async def _round(self) -> None:
        self.sample()

    async def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()
