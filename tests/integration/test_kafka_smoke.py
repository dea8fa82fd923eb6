"""The local Kafka broker works: produce/consume through aiokafka, restart with the same data, and
``python -m services.kafka_local`` prints one line and leaves no JVM behind."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.kafka_local import LocalKafka

REPO_ROOT = Path(__file__).resolve().parents[2]
Record = tuple[bytes, bytes, list[tuple[str, bytes]]]
RECORDS = [
    (b"account-1", b'{"n": 1}', [("ce_id", b"e1"), ("ce_type", b"token.issued")]),
    (b"account-2", b'{"n": 2}', [("ce_id", b"e2"), ("ce_type", b"token.revoked")]),
    (b"account-1", b'{"n": 3}', [("ce_id", b"e3"), ("ce_type", b"token.revoked")]),
]


async def _create_topic(bootstrap: str, name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name=name, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()


async def _produce(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for key, value, headers in RECORDS:
            await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()


async def _consume(bootstrap: str, topic: str, group: str, count: int) -> list[Record]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    received: list[Record] = []
    try:
        deadline = time.monotonic() + 60
        while len(received) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            for messages in batches.values():
                received += [(m.key, m.value, list(m.headers)) for m in messages]
        await consumer.commit()
        committed = await consumer.committed(TopicPartition(topic, 0))
        assert committed == count
    finally:
        await consumer.stop()
    return received


async def test_produce_and_consume_roundtrip(kafka_bootstrap: str) -> None:
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    await _create_topic(kafka_bootstrap, topic)
    await _produce(kafka_bootstrap, topic)
    received = await _consume(kafka_bootstrap, topic, f"g-{uuid.uuid4().hex[:8]}", len(RECORDS))
    assert received == [(key, value, headers) for key, value, headers in RECORDS]


async def test_broker_restart_keeps_data_and_port(kafka_faults: LocalKafka) -> None:
    bootstrap = kafka_faults.bootstrap_servers
    topic = f"restart-{uuid.uuid4().hex[:8]}"
    await _create_topic(bootstrap, topic)
    await _produce(bootstrap, topic)

    await asyncio.to_thread(kafka_faults.stop_broker)
    assert kafka_faults.pid is None
    assert await asyncio.to_thread(kafka_faults.start_broker) == bootstrap

    received = await _consume(bootstrap, topic, f"g-{uuid.uuid4().hex[:8]}", len(RECORDS))
    assert [value for _, value, _ in received] == [value for _, value, _ in RECORDS]


def _java_processes_using(data_dir: Path) -> list[int]:
    """Pids of live processes whose command line runs kafka.Kafka with a file in ``data_dir``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and "kafka.Kafka" in argv and any(str(data_dir) in arg for arg in argv):
            pids.append(int(proc.name))
    return pids


async def _start_command(data_dir: Path) -> tuple[asyncio.subprocess.Process, str]:
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=python_path)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.kafka_local",
        "--data-dir",
        str(data_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=REPO_ROOT,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), timeout=240)).decode()
    return proc, line


async def _wait_gone(data_dir: Path, timeout: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := _java_processes_using(data_dir)) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    return left


async def test_kafka_local_command_prints_one_line_and_stops_on_sigterm(tmp_path: Path) -> None:
    data_dir = tmp_path / "kafka"
    proc, line = await _start_command(data_dir)
    try:
        match = re.fullmatch(r"KAFKA_BOOTSTRAP_SERVERS=(127\.0\.0\.1:\d+)\n", line)
        assert match, line
        assert _java_processes_using(data_dir)
        admin = AIOKafkaAdminClient(bootstrap_servers=match.group(1))
        await admin.start()
        try:
            cluster = await admin.describe_cluster()
        finally:
            await admin.close()
        assert [broker["port"] for broker in cluster["brokers"]] == [int(match.group(1).split(":")[1])]
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, errors = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, errors.decode()
    assert rest == b""  # exactly one line on stdout, ever
    assert _java_processes_using(data_dir) == []
    assert (data_dir / "kraft" / "meta.properties").is_file()


async def test_broker_dies_with_the_kafka_local_process(tmp_path: Path) -> None:
    data_dir = tmp_path / "kafka"
    proc, line = await _start_command(data_dir)
    assert line.startswith("KAFKA_BOOTSTRAP_SERVERS=")
    assert _java_processes_using(data_dir)
    proc.kill()  # no chance to clean up: PR_SET_PDEATHSIG must take the JVM down
    await proc.wait()
    assert await _wait_gone(data_dir) == []
