"""Verification throughput with the usage log on vs off, measured in the same run (aim: on >= 0.9 x off).

    python -m bench.usage [--seconds 3] [--warmup 1] [--rounds 5] [--concurrency 32] [--tokens 1000]
                          [--skip-http] [--json FILE]

Set-up: ``bench.introspect``'s seeding (a throw-away database, ``--tokens`` tokens over 20 accounts, 5%
revoked, the real projections) and its request mix: 90% valid tokens, 10% invalid (revoked, malformed,
fresh random secrets: a database miss each). Short rounds alternate off, on, off, on... so that
drift on a shared machine falls on both sides; the figures are the ratio of the summed throughputs
and the median of the ratios of adjacent (off, on) pairs.

Two measurements:

* in process: ``--concurrency`` loops, each verification ``verifier.check`` then
  ``usage.record_verification`` (what the API does), then one ``asyncio.sleep(0)`` (a request's
  I/O would yield there; without it a cache hit never yields and the background flush would
  never run). "off" is the same recorder without a usage log (``token.used`` and sliding expiry
  still on); "on" adds the log, flushed with COPY every second on the same event loop, so the
  measurement pays for buffering, hashing unknown secrets and the COPY encoding. This is the
  stringent figure: nothing else in the loop dilutes the cost.
* over HTTP: ``bench.introspect``'s introspection server processes with (``introspect``) and
  without (``introspect-unlogged``) the usage log, both started once, loaded in turn by its HTTP
  client. The "on" server's last flush after its round falls in the next round's warm-up (keep
  ``--warmup`` at least the 1 s flush interval).

Wall-clock throughput on a shared machine swings by +-30% between identical servers (an A/A run of
two ``introspect-unlogged`` servers gave pair ratios from 0.7 to 1.5), far more than the effect
measured here. So each mode's CPU time per verification is measured too, which the other load on
the machine barely moves: in process, ``time.process_time()`` over each round, the final flush
included; over HTTP, each server's CPU time and verification count (``/bench/metrics``) from after
start-up to after the last round and a flush interval. ``capacity on/off`` = CPU per verification
off / on: the throughput ratio of a CPU-bound process. PostgreSQL's own work for the COPY (about
6 us a row measured on this machine) is not in it; where PostgreSQL shares the cores, the wall
figures include it.

After each "on" round the rows stored are counted against the verifications made (the log must not
drop rows at this rate).
"""

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import harness
from bench.introspect import PEPPER, Mix, Seeded, dispatcher, fetch_metrics, run_load, seed, server_process
from services import database
from services.eventstore import PostgresEventStore

LOOP_LABELS = ("off", "on")
FLUSH_SECONDS = 1.0


@dataclass(frozen=True)
class Round:
    mode: str
    measurement: harness.Measurement
    cpu_us: float | None = None
    """CPU time of the verifying process per verification, in microseconds."""
    stored_rows: int | None = None
    dropped_rows: int | None = None


@dataclass(frozen=True)
class Result:
    rounds: list[Round]
    cpu_us: dict[str, float]
    """Mode -> CPU time per verification (microseconds)."""

    def summed_ratio(self) -> float:
        on = sum(r.measurement.events_per_second for r in self.rounds if r.mode == "on")
        off = sum(r.measurement.events_per_second for r in self.rounds if r.mode == "off")
        return harness.ratio(on, off)

    def median_pair_ratio(self) -> float:
        """Rounds come as (off, on) pairs: the median of each pair's on/off."""
        rounds = self.rounds
        return statistics.median(
            harness.ratio(on.measurement.events_per_second, off.measurement.events_per_second)
            for off, on in zip(rounds[::2], rounds[1::2], strict=True)
        )

    def capacity_ratio(self) -> float:
        return harness.ratio(self.cpu_us["off"], self.cpu_us["on"])


async def _in_process(dsn: str, seeded: Seeded, args: argparse.Namespace) -> Result:
    from projections.catalogue import ALL_PROJECTIONS
    from projections.runtime import Projections
    from projections.source import CombinedLogSource
    from services.auth.usage import UsageRecorder
    from services.auth.usage_log import UsageLog
    from services.auth.verifier import TokenVerifier
    from services.eventstore.notifications import LogNotifications
    from services.eventstore.tail import LogTail
    from services.tokens.secrets import generate_secret

    pool = await database.create_pool(dsn, min_size=2, max_size=10)
    notifications = LogNotifications(lambda: database.connect(dsn))
    await notifications.start()
    store = PostgresEventStore(pool)
    projections = Projections(
        pool,
        CombinedLogSource(LogTail(store, notifications.waiter()), store),
        ALL_PROJECTIONS,
        connect=lambda: database.connect(dsn),
    )
    await projections.start()
    verifier = TokenVerifier(pool, notifications, PEPPER)
    rounds: list[Round] = []
    cpu = {mode: 0.0 for mode in LOOP_LABELS}
    verifications = {mode: 0 for mode in LOOP_LABELS}
    try:
        if not await projections.wait_until_current(60.0):
            raise RuntimeError("the projections did not catch up")
        await verifier.start()
        rng = random.Random(args.seed)
        malformed = [secret[:-1] + ("A" if secret[-1] != "A" else "B") for secret in seeded.valid[:1000]]

        def draw() -> str:
            roll = rng.random()
            if roll < 0.90:
                return rng.choice(seeded.valid)
            if roll < 0.9333:
                return rng.choice(seeded.revoked)
            if roll < 0.9667:
                return rng.choice(malformed)
            return generate_secret()

        for number in range(args.rounds * 2):
            mode = LOOP_LABELS[number % 2]
            log = UsageLog(pool, PEPPER) if mode == "on" else None
            usage = UsageRecorder(dispatcher(store), expiry=verifier, log=log, flush_interval=FLUSH_SECONDS)
            await usage.start()
            before = await pool.fetchval("SELECT coalesce(max(position), 0) FROM usage_log")

            async def verify_once(_worker: int, usage: UsageRecorder = usage) -> int:
                presented = draw()
                now = datetime.now(UTC)
                verification = await verifier.check(presented, now)
                usage.record_verification(
                    verification,
                    now,
                    "introspect",
                    presented=presented,
                    client_address="127.0.0.1",
                    user_agent="bench/1.0",
                )
                await asyncio.sleep(0)
                return 1

            cpu_before, verified_before = time.process_time(), verifier.metrics.verifications
            measurement = await harness.measure(
                f"in-process {mode}",
                verify_once,
                concurrency=args.concurrency,
                seconds=args.seconds,
                warmup=args.warmup,
            )
            await usage.stop()
            spent = time.process_time() - cpu_before
            verified = verifier.metrics.verifications - verified_before
            cpu[mode] += spent
            verifications[mode] += verified
            stored = dropped = None
            if log is not None:
                stored = await pool.fetchval("SELECT count(*) FROM usage_log WHERE position > $1", before)
                dropped = log.metrics.dropped
                if stored != log.metrics.appended - dropped:
                    raise RuntimeError(f"stored {stored} rows of {log.metrics.appended} appended")
            rounds.append(Round(mode, measurement, spent / verified * 1e6, stored, dropped))
            print(
                f"in-process {mode}: {measurement.events_per_second:,.0f} verifications/s,"
                f" {spent / verified * 1e6:.1f} us CPU each",
                file=sys.stderr,
            )
    finally:
        await verifier.stop()
        await projections.stop()
        await notifications.stop()
        await pool.close()
    return Result(rounds, {mode: cpu[mode] / verifications[mode] * 1e6 for mode in LOOP_LABELS})


async def _server_counters(url: str) -> tuple[float, int]:
    """A server's CPU seconds and verifications so far."""
    metrics = await fetch_metrics(url)
    return float(metrics["cpu_seconds"]), int(metrics["verifier"]["verifications"])


async def _over_http(dsn: str, seeded: Seeded, args: argparse.Namespace) -> Result:
    mix = Mix(seeded, random.Random(args.seed))
    load = argparse.Namespace(concurrency=args.concurrency, seconds=args.seconds, warmup=args.warmup)
    rounds: list[Round] = []
    async with (
        server_process("introspect-unlogged", dsn) as off_url,
        server_process("introspect", dsn) as on_url,
    ):
        urls = {"off": off_url, "on": on_url}
        started = {mode: await _server_counters(url) for mode, url in urls.items()}
        for number in range(args.rounds * 2):
            mode = LOOP_LABELS[number % 2]
            measurement = await run_load(f"http {mode}", urls[mode], mix, load, check=True)
            rounds.append(Round(mode, measurement))
            print(f"http {mode}: {measurement.events_per_second:,.0f} req/s", file=sys.stderr)
        await asyncio.sleep(FLUSH_SECONDS * 1.5)  # the "on" server's last flush
        ended = {mode: await _server_counters(url) for mode, url in urls.items()}
        usage_log = (await fetch_metrics(on_url))["usage_log"]
    if mix.mismatches:
        raise SystemExit(f"{mix.mismatches} introspection answers did not match the token's state")
    if usage_log["dropped"]:
        raise SystemExit(f"the usage log dropped {usage_log['dropped']} rows")
    cpu_us = {
        mode: (ended[mode][0] - started[mode][0]) / (ended[mode][1] - started[mode][1]) * 1e6
        for mode in LOOP_LABELS
    }
    return Result(rounds, cpu_us)


def report(name: str, result: Result) -> str:
    rows = [
        [
            r.measurement.label,
            f"{r.measurement.events_per_second:,.0f}",
            f"{r.measurement.p50_ms:.3f} / {r.measurement.p99_ms:.3f}",
            "" if r.cpu_us is None else f"{r.cpu_us:.1f}",
            "" if r.stored_rows is None else f"{r.stored_rows:,} stored, {r.dropped_rows} dropped",
        ]
        for r in result.rounds
    ]
    table = harness.markdown_table(
        [name, "verifications/s", "p50/p99 ms", "CPU us/verification", "usage log"], rows
    )
    return (
        f"{table}\n\n{name}: CPU per verification off {result.cpu_us['off']:.1f} us, on"
        f" {result.cpu_us['on']:.1f} us: capacity on/off = {result.capacity_ratio():.3f};"
        f" wall throughput on/off = {result.summed_ratio():.3f} (summed),"
        f" {result.median_pair_ratio():.3f} (median of adjacent pairs)"
    )


async def main(args: argparse.Namespace) -> None:
    async with harness.server() as server_dsn, harness.fresh_database(server_dsn, "bench_usage") as dsn:
        print(f"seeding {args.tokens} tokens...", file=sys.stderr)
        seeded = await seed(dsn, args.tokens)
        results: dict[str, Result] = {"in-process": await _in_process(dsn, seeded, args)}
        if not args.skip_http:
            results["http"] = await _over_http(dsn, seeded, args)
        print(f"\n{harness.machine()}; load average {harness.load_average()}")
        print(
            f"concurrency {args.concurrency}, {args.seconds}s measured after {args.warmup}s warm-up,"
            f" {args.rounds} round(s) per mode, {args.tokens} tokens;"
            " mix: 90% valid, 10% invalid (revoked / malformed / random)\n"
        )
        for name, result in results.items():
            print(report(name, result) + "\n")
        if args.json:
            document: dict[str, Any] = {
                "machine": harness.machine(),
                **{
                    name: {
                        "rounds": [
                            {"mode": r.mode, "cpu_us": r.cpu_us, **r.measurement.summary()}
                            for r in result.rounds
                        ],
                        "cpu_us_per_verification": result.cpu_us,
                        "capacity_ratio": result.capacity_ratio(),
                        "summed_ratio": result.summed_ratio(),
                        "median_pair_ratio": result.median_pair_ratio(),
                    }
                    for name, result in results.items()
                },
            }
            await asyncio.to_thread(Path(args.json).write_text, json.dumps(document, indent=2))


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.usage", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=5, help="rounds per mode (off and on alternate)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-http", action="store_true", help="only the in-process measurement")
    parser.add_argument("--json", default=None)
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse(sys.argv[1:])))
