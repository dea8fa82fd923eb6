"""The ``tokenledger audit`` actions that work on the database (light imports: built at every start).

tokenledger audit verify                   exit 0 intact, 1 tampered
tokenledger audit checkpoint [--events N]  seal the committed log into checkpoints
tokenledger audit export [--from T1] [--to T2] [--account ID]   JSON lines on stdout
tokenledger audit export-usage [--after POSITION] [--from T1] [--to T2] [--account ID]
                                           the usage log (every token verification), JSON lines
tokenledger audit import [FILE]            an export (default stdin) into an empty database
tokenledger audit replay --as-of T         effective rights of every account at T (JSON lines)

Every value is checked before the database is touched: a bad one is exit 2 and one line.
"""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, BinaryIO

import click

from services.config import load_settings

Action = Callable[[Any], Awaitable[int]]


class Instant(click.ParamType[datetime]):
    """An RFC 3339 date-time with an offset (``2025-01-31T12:00:00Z``)."""

    name = "RFC3339"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"not an RFC 3339 date-time: {value!r}", param, ctx)
        if parsed.tzinfo is None:
            self.fail(f"give a UTC offset (Z or +hh:mm): {value!r}", param, ctx)
        return parsed


INSTANT = Instant()
UUID_TEXT = click.UUID


def _run(action: Action) -> int:
    from services.audit.commands import run_audit

    return asyncio.run(run_audit(load_settings(), action))


@click.group()
def audit() -> None:
    """The audit trail: tamper check, checkpoints, export/import of the log, rights as of a time.

    verify, checkpoint, export, export-usage, import and replay work on the database (the
    same settings as serve); events, usage and as-of ask the API (a token with audit:read).

    \b
    Example:
      tokenledger audit verify && tokenledger audit export --from 2025-01-01T00:00:00Z > log.jsonl
    """


@audit.command()
def verify() -> int:
    """Recompute the hash chains and checkpoints; exit 1 on any tampering.

    \b
    Example:
      tokenledger audit verify
    """
    from services.audit.commands import verify_log

    return _run(verify_log)


@audit.command()
@click.option(
    "--events",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="events per checkpoint at most",
)
def checkpoint(events: int) -> int:
    """Seal committed events into chained checkpoints.

    \b
    Example:
      tokenledger audit checkpoint --events 5000
    """
    from services.audit.commands import seal_log

    return _run(lambda pool: seal_log(pool, events))


@audit.command()
@click.option("--from", "recorded_from", type=INSTANT, help="recorded at or after (RFC 3339)")
@click.option("--to", "recorded_to", type=INSTANT, help="recorded before (RFC 3339)")
@click.option("--account", "account_id", type=UUID_TEXT, help="only this account's events (its id)")
def export(recorded_from: datetime | None, recorded_to: datetime | None, account_id: Any) -> int:
    """Stream the log as JSON lines on stdout (public data only).

    \b
    Example:
      tokenledger audit export --account 6f1b7c1e-4a43-4f07-9d8a-1a2b3c4d5e6f > account.jsonl
    """
    from services.audit.commands import export_log
    from services.audit.export import ExportFilter

    selection = ExportFilter(
        recorded_from=recorded_from,
        recorded_to=recorded_to,
        account_id=None if account_id is None else str(account_id),
    )
    return _run(lambda pool: export_log(pool, selection))


@audit.command("export-usage")
@click.option("--after", type=click.IntRange(min=0), default=0, help="only rows after this position")
@click.option("--from", "recorded_from", type=INSTANT, help="recorded at or after (RFC 3339)")
@click.option("--to", "recorded_to", type=INSTANT, help="recorded before (RFC 3339)")
@click.option("--account", "account_id", type=UUID_TEXT, help="only this account's rows (its id)")
def export_usage(
    after: int, recorded_from: datetime | None, recorded_to: datetime | None, account_id: Any
) -> int:
    """Stream the usage log (every token verification) as JSON lines on stdout.

    \b
    Example:
      tokenledger audit export-usage --after 41000 > usage.jsonl
    """
    from services.audit.commands import export_usage_log
    from services.audit.usage_export import UsageExportFilter

    selection = UsageExportFilter(
        after=after,
        recorded_from=recorded_from,
        recorded_to=recorded_to,
        account_id=None if account_id is None else str(account_id),
    )
    return _run(lambda pool: export_usage_log(pool, selection))


@audit.command("import")
@click.argument("file", type=click.File("rb"), default="-")
def import_(file: BinaryIO) -> int:
    """Append an unfiltered export (FILE, default stdin) to an empty database.

    \b
    Example:
      DATABASE_URL=postgresql://localhost/copy tokenledger audit import log.jsonl
    """
    from services.audit.commands import import_log

    return _run(lambda pool: import_log(pool, file))


@audit.command()
@click.option("--as-of", "as_of", type=INSTANT, required=True, help="the instant (RFC 3339)")
def replay(as_of: datetime) -> int:
    """Effective rights of every account at a time, as JSON lines.

    \b
    Example:
      tokenledger audit replay --as-of 2025-01-31T12:00:00Z
    """
    from services.audit.commands import replay_rights

    return _run(lambda pool: replay_rights(pool, as_of))
