"""``tokenledger projections status|rebuild``: what operators ask of the read side.

Both run against the live database while the service keeps serving: ``status`` reads the
checkpoints; ``rebuild`` builds new versioned tables from position 0 and switches the views
atomically once they have caught up (the old tables serve until then). A rebuild only writes read
models: nothing is sent to Kafka (the relay has its own checkpoint, untouched by rebuilds).
"""

import sys

import msgspec

from projections.status import ProjectionStatus
from services.composition import open_runtime
from services.config import Settings
from services.progress import reporting

LEGEND = """\
live      the version of the read model's tables that serves reads now (- : none built yet); each
          version is one generation of the tables, built from position 0 by a projector
position  the last log position that version has applied
lag       events committed after it, not applied yet; lag_s: how old the oldest of them is
health    live; rebuilding to version N (built beside the live one, switched to when caught up);
          or failed at position P: that event stopped the projection (exit 1)"""


def _health(row: ProjectionStatus) -> str:
    """What the checkpoints say (this process runs no runner, so its runner states say nothing)."""
    if row.failed_event is not None:
        return f"failed at position {row.failed_event.position}: {row.failed_event.error}"
    if row.live_version != row.version:
        return f"rebuilding to version {row.version} when a projector starts"
    return "live"


async def status(settings: Settings) -> int:
    """Prints one line per projection; exits 1 when one has failed (so monitoring can alert)."""
    alone = msgspec.structs.replace(settings, workers=frozenset())
    async with open_runtime(alone, pool_size=2) as runtime:
        rows = await runtime.projections.status()
    print(f"{'projection':<18} {'live':>5} {'position':>12} {'lag':>9} {'lag_s':>9}  health")
    failed = False
    for row in rows:
        failed = failed or row.failed_event is not None
        line = (
            f"{row.name:<18} {row.live_version or '-':>5} {row.position or 0:>12}"
            f" {row.lag_events:>9} {row.lag_seconds:>8.1f}s  {_health(row)}"
        )
        print(line)
    print(LEGEND, file=sys.stderr)
    return 1 if failed else 0


async def rebuild(settings: Settings, names: list[str], *, every: bool) -> int:
    alone = msgspec.structs.replace(settings, workers=frozenset())
    async with open_runtime(alone, pool_size=4) as runtime:
        known = runtime.projections.names
        chosen = known if every else names
        unknown = sorted(set(chosen) - set(known))
        if unknown or not chosen:
            print(f"name the projections to rebuild (or --all); known: {', '.join(known)}")
            return 2
        total: int = await runtime.pool.fetchval("SELECT count(*) FROM events")
        with reporting(f"rebuilding {', '.join(chosen)}", total) as advance:
            switched = await runtime.projections.rebuild(*chosen, advance=advance)
    for name, cursor in switched.items():
        print(f"{name}: rebuilt and switched at position {cursor.position}")
    return 0
