"""The ``tokenledger kafka-local`` command: a broker in the foreground until SIGTERM/SIGINT.

Owns the command's foreground loop, :func:`run_kafka_local` (its options are in ``services.cli``):
start the broker, print exactly one line
``KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:<port>`` on stdout, wait; on SIGTERM or SIGINT stop the
broker cleanly and exit 0; if the broker dies by itself, exit non-zero with the tail of its log
on stderr.

Data dir default: ``$TOKENLEDGER_DATA_DIR/kafka`` (the data directory of every other command,
``~/.local/share/tokenledger/kafka`` on Linux when unset), so topics survive restarts of the command.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from services.config import data_dir_of
from services.kafka_local.broker import LocalKafka
from services.kafka_local.errors import KafkaLocalError, StartAbortedError

BOOTSTRAP_PREFIX = "KAFKA_BOOTSTRAP_SERVERS="


def default_data_dir() -> Path:
    """Where ``kafka-local`` keeps its data when ``--data-dir`` is not given."""
    return data_dir_of() / "kafka"


def run_kafka_local(port: int | None, data_dir: Path | None) -> int:
    """Run a local broker in the foreground; return the process exit code."""
    # aiokafka logs every refused connection while the broker boots; that is expected here.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        kafka = LocalKafka(port=port, data_dir=data_dir if data_dir is not None else default_data_dir())
    except ValueError as exc:  # e.g. port 0 from a caller that skipped the command line's checks
        print(f"kafka-local: {exc}", file=sys.stderr, flush=True)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()
        kafka.abort_start()

    handled = (signal.SIGTERM, signal.SIGINT)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, on_signal) for sig in handled} if in_main_thread else {}
    try:
        try:
            bootstrap = kafka.start()
        except StartAbortedError:
            return 0
        except KafkaLocalError as exc:
            print(f"kafka-local: {exc}", file=sys.stderr, flush=True)
            return 1
        if stop.is_set():
            return 0
        print(f"{BOOTSTRAP_PREFIX}{bootstrap}", flush=True)
        while not stop.wait(0.5):
            returncode = kafka.poll()
            if returncode is not None:
                print(
                    f"kafka-local: the Kafka broker exited unexpectedly with code {returncode}; "
                    f"last lines of {kafka.layout.broker_log}:\n{kafka.log_tail()}",
                    file=sys.stderr,
                    flush=True,
                )
                return returncode if returncode > 0 else 1
        return 0
    finally:
        kafka.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
