"""``python -m services.kafka_local``: the ``kafka-local`` command without the main CLI."""

from __future__ import annotations

import argparse
import sys

from services.kafka_local.cli import add_cli_arguments, run_kafka_local


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.kafka_local",
        description="Run a single-node Apache Kafka (KRaft) broker on 127.0.0.1 in the foreground.",
    )
    add_cli_arguments(parser)
    args = parser.parse_args(argv)
    return run_kafka_local(args.port, args.data_dir)


if __name__ == "__main__":
    sys.exit(main())
