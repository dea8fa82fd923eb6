"""Live projection lag under a steady command load: ``python -m bench.projection_lag [--rate 1000]
[--seconds 10]``.

The production runtime (``open_runtime`` with the projector worker) on a throw-away database; the
load is real commands (``create_account``: fold, decide, append with a name claim) started open-loop
at ``--rate`` per second. For each command, lag is the time from its append returning to every read
model holding it (``Projections.wait_for`` on its cursor). The baseline printed next to it is the
append latency itself in the same run, so the figure reads as "how much later than the write the
reads see it". Reports achieved rate, lag p50/p99/max.
"""

import argparse
import asyncio
import tempfile
import time

from bench import harness
from services.accounts.commands import CreateAccount
from services.authorization import SYSTEM
from services.commands import CommandContext
from services.composition import open_runtime, utc_now
from services.config import load_settings


async def main(args: argparse.Namespace) -> None:
    print(f"machine: {harness.machine()}; load average at start {harness.load_average()}")
    async with harness.server() as server_dsn, harness.fresh_database(server_dsn) as dsn:
        settings = load_settings(
            {
                "DATABASE_URL": dsn,
                "TOKENLEDGER_DATA_DIR": tempfile.mkdtemp(prefix="tokenledger-bench-"),
                "TOKENLEDGER_PEPPER": "bench-pepper-0123456789abcdef0123456789",
                "TOKENLEDGER_WORKERS": "projector",
            }
        )
        async with open_runtime(settings, pool_size=40) as runtime:
            await runtime.until_read_models_current()
            lags: list[float] = []
            appends: list[float] = []

            async def command(number: int) -> None:
                began = time.perf_counter()
                ctx = CommandContext(now=utc_now(), actor="system:bench")
                outcome = await runtime.dispatcher.dispatch(
                    CreateAccount(name=f"lag-{number}", description=""), SYSTEM, ctx
                )
                written = time.perf_counter()
                assert outcome.cursor is not None
                await runtime.projections.wait_for(outcome.cursor, 30)
                appends.append(written - began)
                lags.append(time.perf_counter() - written)

            tasks = []
            started = time.perf_counter()
            total = int(args.rate * args.seconds)
            for number in range(total):
                delay = started + number / args.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(command(number)))
            await asyncio.gather(*tasks)
            elapsed = time.perf_counter() - started
    rows = [
        [
            "projection lag (append -> read models)",
            *(f"{harness.percentile(lags, q) * 1000:.1f}" for q in (0.5, 0.99, 1.0)),
        ],
        [
            "append latency (baseline)",
            *(f"{harness.percentile(appends, q) * 1000:.1f}" for q in (0.5, 0.99, 1.0)),
        ],
    ]
    print(
        f"{total} commands in {elapsed:.1f} s: {total / elapsed:,.0f} commands/s (target {args.rate:g}/s)\n"
    )
    print(harness.markdown_table(["ms", "p50", "p99", "max"], rows))
    print(f"\nload average at end {harness.load_average()}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.projection_lag")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
