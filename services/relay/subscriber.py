"""``tokenledger subscribe``: a small reference consumer that prints the relay's events as JSON lines.

It reads the topics the chosen types are published on, skips records that are not CloudEvents,
drops a record whose ``ce_id`` it has already printed (the relay delivers at least once; the first
copy of each event comes in log order per key, so skipping repeats is all a consumer must do), and
prints one line per event::

    {"id": "...", "type": "io.tokenledger.token.revoked", "source": "...", "subject": "<token id>",
     "time": "...", "key": "<account id>", "data": {...}, "topic": "...", "partition": 0, "offset": 7}

Without ``group`` it reads without committing offsets, from the end of each topic (or from the
beginning with ``from_beginning``); with ``group`` it joins that consumer group and commits.
"""

import asyncio
import collections
import contextlib
import logging
import signal
import sys
from collections.abc import Iterable
from typing import Any, TextIO

import msgspec
from aiokafka import AIOKafkaConsumer

from services.relay.cloudevents import (
    PUBLISHED,
    TYPE_PREFIX,
    Channel,
    NotACloudEvent,
    Topics,
    from_record,
)

_log = logging.getLogger(__name__)
RECENT_IDS = 100_000


class UnknownEventType(ValueError):
    """``--type`` names a type the relay does not publish."""


class PrintedEvent(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    type: str
    source: str
    subject: str
    time: str
    key: str
    data: dict[str, Any]
    topic: str
    partition: int
    offset: int


class RecentIds:
    """The last ``capacity`` ids seen: bounded memory for de-duplicating a stream of events."""

    def __init__(self, capacity: int = RECENT_IDS) -> None:
        self._capacity = capacity
        self._ids: collections.OrderedDict[str, None] = collections.OrderedDict()

    def first_time(self, event_id: str) -> bool:
        """True the first time ``event_id`` is offered (within the window)."""
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            return False
        self._ids[event_id] = None
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
        return True


def wanted_tags(types: Iterable[str]) -> frozenset[str]:
    """``token.revoked`` or ``io.tokenledger.token.revoked`` -> ``token.revoked``; every published tag
    when ``types`` is empty."""
    tags = frozenset(name.removeprefix(TYPE_PREFIX) for name in types)
    unknown = sorted(tags - PUBLISHED.keys())
    if unknown:
        raise UnknownEventType(
            f"not published: {', '.join(unknown)}; published: {', '.join(sorted(PUBLISHED))}"
        )
    return tags or frozenset(PUBLISHED)


def topics_for(tags: Iterable[str], topics: Topics) -> list[str]:
    channels = {PUBLISHED[tag] for tag in tags}
    return [topics.name(channel) for channel in Channel if channel in channels]


_encoder = msgspec.json.Encoder()


async def subscribe(
    bootstrap_servers: str,
    topics: Topics,
    types: Iterable[str] = (),
    *,
    group: str | None = None,
    from_beginning: bool = False,
    limit: int | None = None,
    output: TextIO = sys.stdout,
) -> int:
    """Prints events until SIGINT/SIGTERM or until ``limit`` events were printed; returns the count."""
    tags = wanted_tags(types)
    consumer = AIOKafkaConsumer(
        *topics_for(tags, topics),
        bootstrap_servers=bootstrap_servers,
        group_id=group,
        client_id="tokenledger-subscribe",
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=group is not None,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    seen = RecentIds()
    printed = 0
    await consumer.start()
    try:
        while not stop.is_set() and (limit is None or printed < limit):
            wanted = None if limit is None else limit - printed  # never fetch past the limit
            batches = await consumer.getmany(timeout_ms=500, max_records=wanted)
            for partition, records in batches.items():
                for record in records:
                    try:
                        event = from_record(record.key, record.value, record.headers)
                    except NotACloudEvent as error:
                        _log.warning("skipping %s@%d: %s", partition, record.offset, error)
                        continue
                    if event.tag not in tags or not seen.first_time(event.id):
                        continue
                    line = PrintedEvent(
                        **msgspec.structs.asdict(event),
                        topic=record.topic,
                        partition=record.partition,
                        offset=record.offset,
                    )
                    output.write(_encoder.encode(line).decode() + "\n")
                    output.flush()
                    printed += 1
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        with contextlib.suppress(Exception):
            await consumer.stop()
    return printed
