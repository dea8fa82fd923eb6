"""``python -m services.kafka_local``: the ``kafka-local`` command without the main CLI."""

from __future__ import annotations

import sys

from services.cli import kafka_local, run

if __name__ == "__main__":
    sys.exit(run(kafka_local, prog_name="python -m services.kafka_local"))
