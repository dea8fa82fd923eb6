"""The relay's Kafka producer settings, in one place so the benchmark's raw producer uses the same.

``acks="all"`` and the idempotent producer: a record counts as sent once every in-sync replica has
it, and retries never duplicate or reorder records within one producer session. With idempotence
aiokafka never expires a batch (it retries a retriable error until the broker takes the batch) and
keeps one request in flight per broker, so what reaches a partition is always a prefix of what was
sent to it, in order. ``max_batch_size`` is raised from aiokafka's 16 KiB so that one request
carries a whole batch of the log.
"""

from typing import Any

from aiokafka import AIOKafkaProducer

PRODUCER_SETTINGS: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": True,
    "linger_ms": 0,
    "max_batch_size": 256 * 1024,
}


def new_producer(bootstrap_servers: str, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap_servers, client_id=client_id, **PRODUCER_SETTINGS)
