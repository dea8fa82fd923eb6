"""Pytest plugin: one Kafka broker per test session.

``kafka_bootstrap`` yields ``host:port`` of the broker tests should use: ``$KAFKA_BOOTSTRAP_SERVERS``
if set, else a local KRaft broker (:class:`services.kafka_local.LocalKafka`) started once per
session in a pytest temp dir (kept for the last few runs, so ``broker.log`` can be read after a
failure). ``local_kafka`` gives the broker object itself; ``kafka_faults`` gives it to one test
that stops, kills or freezes it, and makes sure it runs again afterwards. Both are always a local
broker, also when ``$KAFKA_BOOTSTRAP_SERVERS`` is set, so such tests must talk to
``local_kafka.bootstrap_servers``.

Enable with ``pytest_plugins = ["tests.kafka_fixture"]`` in ``tests/conftest.py``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from services.kafka_local import LocalKafka


@pytest.fixture(scope="session")
def local_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A local single-node broker for the whole session (skipped if Java is missing)."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java runtime to run a local Kafka broker")
    kafka = LocalKafka(data_dir=tmp_path_factory.mktemp("kafka"))
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> Iterator[str]:
    """Bootstrap servers of the session's broker (``$KAFKA_BOOTSTRAP_SERVERS`` wins)."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    kafka: LocalKafka = request.getfixturevalue("local_kafka")
    yield kafka.bootstrap_servers


@pytest.fixture
def kafka_faults(local_kafka: LocalKafka) -> Iterator[LocalKafka]:
    """``local_kafka`` for a test that stops, kills or pauses it; running again afterwards."""
    yield local_kafka
    local_kafka.resume()
    local_kafka.start_broker()
