"""Creating the relay's topics when they are missing (aiokafka admin client).

A topic that exists already is left as it is (its partition count and replication factor are not
checked or changed). Without an explicit replication factor a topic gets 3 replicas, or one per
broker when the cluster has fewer than 3 brokers (a single development broker: 1).
"""

import logging
from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

_log = logging.getLogger(__name__)

DEFAULT_REPLICATION_FACTOR = 3
_NO_ERROR = 0
_TOPIC_ALREADY_EXISTS = 36


class TopicCreationFailed(RuntimeError):
    """The broker refused to create a topic (for a reason other than its existing already)."""


async def ensure_topics(
    bootstrap_servers: str,
    names: Sequence[str],
    *,
    partitions: int,
    replication_factor: int | None = None,
) -> list[str]:
    """Creates the topics of ``names`` that do not exist; returns the names it created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="tokenledger-relay-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in dict.fromkeys(names) if name not in existing]
        if not missing:
            return []
        if replication_factor is None:
            brokers = len((await admin.describe_cluster())["brokers"])
            replication_factor = max(1, min(DEFAULT_REPLICATION_FACTOR, brokers))
        response = await admin.create_topics(
            [
                NewTopic(name, num_partitions=partitions, replication_factor=replication_factor)
                for name in missing
            ]
        )
    finally:
        await admin.close()
    created = []
    for topic, code, *details in response.topic_errors:
        if code == _NO_ERROR:
            created.append(topic)
        elif code != _TOPIC_ALREADY_EXISTS:
            message = details[0] if details else ""
            raise TopicCreationFailed(f"cannot create topic {topic!r}: error {code} {message}".rstrip())
    if created:
        _log.info(
            "created Kafka topic(s) %s (partitions %d, replication factor %d)",
            ", ".join(created),
            partitions,
            replication_factor,
        )
    return created
