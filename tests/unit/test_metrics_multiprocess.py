"""Several processes, one exposition: with ``PROMETHEUS_MULTIPROC_DIR`` shared, ``services.metrics.render``
aggregates what every process counted (counters and histograms summed, a process's own gauges
summed over the live processes, the database-sampled gauges as last sampled), as a service with
several HTTP processes needs. Each process here is a real interpreter importing the real module."""

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from services import metrics

REPO = Path(__file__).resolve().parents[2]

WORKLOAD = """
import sys, time
from services import metrics
requests, in_use, lag, forget = (int(v) for v in sys.argv[1:])
for _ in range(requests):
    metrics.HTTP_REQUESTS.labels("/v3/system-accounts", "POST", "201").inc()
    metrics.HTTP_LATENCY.labels("/v3/system-accounts", "POST").observe(0.01)
metrics.observe_command("account.create", None, 0.002)
metrics.POOL_CONNECTIONS.labels("in_use").set(in_use)
time.sleep(0.01)  # the later sample of the lag must be the later process's
metrics.PROJECTION_LAG_EVENTS.labels("accounts").set(lag)
if forget:
    metrics.forget_process()
"""


def run_process(directory: Path, *arguments: int) -> None:
    environment = {**os.environ, metrics.MULTIPROC_DIR: str(directory), "PYTHONPATH": str(REPO)}
    subprocess.run(
        [sys.executable, "-c", WORKLOAD, *map(str, arguments)], env=environment, check=True, timeout=60
    )


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_exposition_adds_up_every_process(tmp_path: Path) -> None:
    run_process(tmp_path, 3, 2, 10, 0)
    run_process(tmp_path, 4, 5, 7, 0)
    found = samples(metrics.render(str(tmp_path)).decode())
    route = ("route", "/v3/system-accounts")
    created = frozenset({route, ("method", "POST"), ("status", "201")})
    assert found[("tokenledger_http_requests_total", created)] == 7
    latency = frozenset({route, ("method", "POST")})
    assert found[("tokenledger_http_request_duration_seconds_count", latency)] == 7
    command = frozenset({("command", "account.create"), ("outcome", "ok")})
    assert found[("tokenledger_commands_total", command)] == 2
    assert found[("tokenledger_db_pool_connections", frozenset({("state", "in_use")}))] == 7
    assert found[("tokenledger_projection_lag_events", frozenset({("projection", "accounts")}))] == 7


def test_a_process_that_ended_keeps_its_counts_but_not_its_gauges(tmp_path: Path) -> None:
    run_process(tmp_path, 2, 3, 1, 0)
    run_process(tmp_path, 5, 4, 1, 1)
    found = samples(metrics.render(str(tmp_path)).decode())
    created = frozenset({("route", "/v3/system-accounts"), ("method", "POST"), ("status", "201")})
    assert found[("tokenledger_http_requests_total", created)] == 7
    assert found[("tokenledger_db_pool_connections", frozenset({("state", "in_use")}))] == 3


def test_without_a_shared_directory_the_process_exposes_its_own_registry() -> None:
    assert metrics.MULTIPROC_DIR not in os.environ
    text = metrics.render().decode()
    assert "tokenledger_http_requests_total" in text or "# HELP tokenledger_http_requests" in text
    assert "python_gc_objects_collected_total" in text  # the default registry's own collectors


def test_outcome_labels_are_a_fixed_set() -> None:
    from services.commands import Conflict, NotFound
    from services.idempotency_claims import KeyReused

    assert metrics.outcome_label(None) == "ok"
    assert metrics.outcome_label(NotFound("the account abc-123 was not found")) == "not_found"
    assert metrics.outcome_label(Conflict("name 'ci-bot' taken")) == "conflict"
    assert metrics.outcome_label(KeyReused("x")) == "key_reused"
    assert metrics.outcome_label(RuntimeError("spat_secret in a message")) == "error"
    assert metrics.method_label("GET") == "GET"
    assert metrics.method_label("BREW") == "other"


def test_a_shared_directory_that_does_not_exist_is_one_configuration_line(tmp_path: Path) -> None:
    environment = {
        **os.environ,
        metrics.MULTIPROC_DIR: str(tmp_path / "missing"),
        "PYTHONPATH": str(REPO),
        "TOKENLEDGER_DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "migrate"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"tokenledger: configuration error: {metrics.MULTIPROC_DIR}: "
        f"'{tmp_path / 'missing'}' is not a writable directory"
    ]
