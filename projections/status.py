"""What ``GET /projections`` (and ``tokenledger projections status``) shows of each projection."""

from collections.abc import Mapping

import asyncpg
import msgspec

from events import LogCursor
from projections import bookkeeping
from projections.runner import FailedEvent, ProjectionRunner, RunnerState


class ProjectionStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: int
    """The version of this code's projection."""
    live_version: int | None
    """The version the views serve (None before the first build)."""
    checkpoint: LogCursor | None
    position: int | None
    lag_events: int
    """Events in the log after the checkpoint."""
    lag_seconds: float
    """Age of the oldest event after the checkpoint (0 when there is none)."""
    state: str
    error: str | None
    failed_event: FailedEvent | None


_STATUS_SQL = """
SELECT n.name, c.version, c.tx_id, c.position, l.events, l.seconds
  FROM unnest($1::text[]) AS n (name)
  LEFT JOIN projection_checkpoints c ON c.name = n.name
  CROSS JOIN LATERAL (
        SELECT count(*) AS events,
               coalesce(extract(epoch FROM clock_timestamp() - min(e.recorded_at)), 0)::float8 AS seconds
          FROM events e
         WHERE (e.tx_id, e.global_position)
               > (coalesce(c.tx_id, 0)::text::xid8, coalesce(c.position, 0))) AS l
"""


async def projection_status(
    pool: asyncpg.Pool, runners: Mapping[str, ProjectionRunner]
) -> list[ProjectionStatus]:
    """Each runner's state as this process sees it, with its checkpoint and lag from the database
    (a failure recorded by another process counts when this runner is not active)."""
    names = list(runners)
    async with pool.acquire() as connection:
        rows = await connection.fetch(_STATUS_SQL, names)
        failures = await bookkeeping.load_failures(connection, names)
    result = []
    for row in rows:
        runner = runners[row["name"]]
        failure = failures.get(runner.name)
        state: str = runner.state
        failed_event = runner.failed_event
        if not runner.active and runner.state is not RunnerState.FAILED and failure is not None:
            state = RunnerState.FAILED
        if failed_event is None and failure is not None and state == RunnerState.FAILED:
            failed_event = FailedEvent(
                position=failure.cursor.position,
                tx_id=failure.cursor.tx_id,
                event_type=failure.event_type,
                event_id=failure.event_id,
                error=failure.error,
            )
        has_row = row["version"] is not None
        result.append(
            ProjectionStatus(
                name=runner.name,
                version=runner.projection.version,
                live_version=row["version"],
                checkpoint=LogCursor(row["tx_id"], row["position"]) if has_row else None,
                position=row["position"],
                lag_events=row["events"],
                lag_seconds=max(0.0, row["seconds"]),
                state=str(state),
                error=failed_event.error if failed_event else None,
                failed_event=failed_event,
            )
        )
    return result
