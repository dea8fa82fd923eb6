"""The child process of ``test_eventstore_crash``: appends events through the store until it is killed
(or has made ``--appends`` appends), printing each committed append as one JSON line on stdout:
``{"events": [[event_id, stream_id, stream_version], ...]}``, flushed at once.

Run as ``python tests/integration/eventstore_crash_writer.py DSN [--writers N] [--appends N]`` with
the repository on PYTHONPATH.
"""

import argparse
import asyncio
import json
import random
import sys
import uuid

from services import database
from services.eventstore import PostgresEventStore
from services.ports import AppendResult, StreamAppend, StreamState
from tests.integration.eventstore_helpers import events

SHARED_STREAM = "crash-shared"


class Writer:
    def __init__(self, store: PostgresEventStore, appends: int | None) -> None:
        self.store = store
        self.left = appends
        self.run = uuid.uuid4().hex[:8]

    def report(self, result: AppendResult, streams: list[str]) -> None:
        rows = [
            [str(e.event_id), stream, e.stream_version]
            for e, stream in zip(result.events, streams, strict=True)
        ]
        sys.stdout.write(json.dumps({"events": rows}) + "\n")
        sys.stdout.flush()

    def another(self) -> bool:
        if self.left is None:
            return True
        self.left -= 1
        return self.left >= 0

    async def write(self, number: int) -> None:
        """Mixes ANY appends to a stream shared with every writer (and every run), exact appends to
        streams of its own, and multi-stream appends."""
        rng = random.Random(number)
        versions = {f"crash-{self.run}-{number}-{k}": 0 for k in range(3)}
        while self.another():
            choice = rng.random()
            if choice < 0.3:
                batch = events(rng.randint(1, 3))
                result = await self.store.append(SHARED_STREAM, batch, StreamState.ANY)
                self.report(result, [SHARED_STREAM] * len(batch))
            elif choice < 0.7:
                stream = rng.choice(sorted(versions))
                batch = events(rng.randint(1, 5))
                result = await self.store.append(stream, batch, versions[stream])
                versions[stream] += len(batch)
                self.report(result, [stream] * len(batch))
            else:
                one, two = rng.sample(sorted(versions), 2)
                first, second = events(rng.randint(1, 3)), events(rng.randint(1, 3))
                result = await self.store.append_many(
                    [StreamAppend(one, first, versions[one]), StreamAppend(two, second, versions[two])]
                )
                versions[one] += len(first)
                versions[two] += len(second)
                self.report(result, [one] * len(first) + [two] * len(second))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dsn")
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--appends", type=int, default=None, help="stop after this many (default: never)")
    args = parser.parse_args()
    pool = await database.create_pool(args.dsn, min_size=args.writers, max_size=args.writers)
    try:
        writer = Writer(PostgresEventStore(pool), args.appends)
        await asyncio.gather(*(writer.write(n) for n in range(args.writers)))
    finally:
        await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
