"""A local Apache Kafka broker (KRaft, single node) without Docker, for development and tests.

The broker's jars come from Maven Central through Maven (see ``pom.xml`` beside this file) and
its classpath is cached (:mod:`.classpath`); it runs as a child JVM (:mod:`.broker`) configured
by :mod:`.broker_config`; :mod:`.cli` is the ``tokenledger kafka-local`` command. Needs Java 17+
and, for the first start only, Maven.
"""

from __future__ import annotations

from services.kafka_local.broker import LocalKafka
from services.kafka_local.classpath import KAFKA_VERSION
from services.kafka_local.cli import default_data_dir, run_kafka_local
from services.kafka_local.errors import BrokerExitedError, KafkaLocalError, StartAbortedError

__all__ = [
    "KAFKA_VERSION",
    "BrokerExitedError",
    "KafkaLocalError",
    "LocalKafka",
    "StartAbortedError",
    "default_data_dir",
    "run_kafka_local",
]
