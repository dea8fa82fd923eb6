"""Durations as a person types them: ``30d``, ``12h``, ``90m``, ``45s``, ``1y`` (365 days), and the
instant that far from now (or ``never``)."""

import re
from datetime import UTC, datetime, timedelta

import click

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400, "y": 365 * 86_400}
_DURATION = re.compile(r"([1-9][0-9]{0,5})([smhdwy])")
MAX_SECONDS = 10 * 365 * 86_400


def duration_seconds(text: str, option: str) -> int:
    """The seconds of ``text``, or a usage error (exit 2) naming the option."""
    found = _DURATION.fullmatch(text.strip())
    seconds = int(found.group(1)) * _UNITS[found.group(2)] if found else 0
    if not found or seconds > MAX_SECONDS:
        raise click.BadParameter(
            f"{text!r} is not a duration such as 30d, 12h, 1y (at most 10 years)", param_hint=option
        )
    return seconds


def instant_after(text: str, option: str) -> str | None:
    """RFC 3339 UTC, whole seconds: now + the duration ``text``; ``None`` for ``never``."""
    if text.strip() == "never":
        return None
    at = datetime.now(UTC) + timedelta(seconds=duration_seconds(text, option))
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")
