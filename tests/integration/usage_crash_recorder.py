"""The child process of ``test_usage_history``'s crash test: records verifications through the real
``UsageRecorder`` (usage log on, background flushing every ``--flush-seconds``) until it is killed.

Each verification is an unknown token, operation ``op-<n>`` (n = 0, 1, 2...), ``occurred_at`` = the
wall clock. Whenever the log's count of stored rows grows, prints ``{"flushed_rows": N}`` on stdout,
flushed at once, so the parent knows what was durable before it killed this process.

Run as ``python tests/integration/usage_crash_recorder.py DSN --flush-seconds S`` with the repository
on PYTHONPATH.
"""

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime

from services import database
from services.auth.principal import Rejection, Verification
from services.auth.usage import UsageRecorder
from services.auth.usage_log import UsageLog
from services.eventstore import PostgresEventStore
from tests.integration.test_verifier_support import PEPPER, dispatcher_over

RECORD_EVERY_SECONDS = 0.002


async def main(dsn: str, flush_seconds: float) -> None:
    pool = await database.create_pool(dsn, min_size=1, max_size=2)
    log = UsageLog(pool, PEPPER)
    recorder = UsageRecorder(dispatcher_over(PostgresEventStore(pool)), log=log, flush_interval=flush_seconds)
    await recorder.start()
    unknown = Verification(Rejection.UNKNOWN)
    reported = 0
    number = 0
    while True:
        recorder.record_verification(unknown, datetime.now(UTC), f"op-{number}", presented="not-a-token")
        number += 1
        if log.metrics.flushed_rows != reported:
            reported = log.metrics.flushed_rows
            sys.stdout.write(json.dumps({"flushed_rows": reported}) + "\n")
            sys.stdout.flush()
        await asyncio.sleep(RECORD_EVERY_SECONDS)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("dsn")
    parser.add_argument("--flush-seconds", type=float, required=True)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.dsn, arguments.flush_seconds))
