"""The ``tokenledger audit`` command group's arguments (light imports: parsed at every start-up).

tokenledger audit verify                   exit 0 intact, 1 tampered
tokenledger audit checkpoint [--events N]  seal the committed log into checkpoints
tokenledger audit export [--from T1] [--to T2] [--account ID]   JSON lines on stdout
tokenledger audit export-usage [--after POSITION] [--from T1] [--to T2] [--account ID]
                                           the usage log (every token verification), JSON lines
tokenledger audit import [FILE]            an export (default stdin) into an empty database
tokenledger audit replay --as-of T         effective rights of every account at T (JSON lines)
"""

import argparse
from datetime import datetime


def instant(text: str) -> datetime:
    """An RFC 3339 date-time with an offset (``2025-01-31T12:00:00Z``)."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 date-time: {text!r}") from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a UTC offset (Z or +hh:mm): {text!r}")
    return parsed


def add_cli_arguments(audit: argparse.ArgumentParser) -> None:
    actions = audit.add_subparsers(dest="action", required=True)
    actions.add_parser("verify", help="recompute the hash chains and checkpoints; exit 1 on any tampering")
    checkpoint = actions.add_parser("checkpoint", help="seal committed events into chained checkpoints")
    checkpoint.add_argument("--events", type=int, default=10_000, help="events per checkpoint at most")
    export = actions.add_parser("export", help="stream the log as JSON lines (public data only)")
    export.add_argument("--from", dest="recorded_from", type=instant, help="recorded at or after")
    export.add_argument("--to", dest="recorded_to", type=instant, help="recorded before")
    export.add_argument("--account", dest="account_id", help="only this account's events")
    usage = actions.add_parser("export-usage", help="stream the usage log (every verification) as JSON lines")
    usage.add_argument("--after", type=int, default=0, help="only rows after this position")
    usage.add_argument("--from", dest="recorded_from", type=instant, help="recorded at or after")
    usage.add_argument("--to", dest="recorded_to", type=instant, help="recorded before")
    usage.add_argument("--account", dest="account_id", help="only this account's rows")
    load = actions.add_parser("import", help="append an unfiltered export to an empty database")
    load.add_argument("file", nargs="?", type=argparse.FileType("rb"), default="-")
    replay = actions.add_parser("replay", help="effective rights of every account at a time")
    replay.add_argument("--as-of", dest="as_of", type=instant, required=True)
