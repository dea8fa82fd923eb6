"""The geometry of the usage chart: uses per hour over the last days, accepted and rejected stacked,
as SVG rectangles the template draws (no script, no chart library)."""

from collections.abc import Iterable
from datetime import datetime, timedelta

import msgspec

BAR_WIDTH = 4
HEIGHT = 120
LEFT = 36
BOTTOM = 20


class Bar(msgspec.Struct, frozen=True, kw_only=True):
    hour: datetime
    accepted: int
    rejected: int
    x: int
    accepted_y: float
    accepted_height: float
    rejected_y: float
    rejected_height: float


class Chart(msgspec.Struct, frozen=True, kw_only=True):
    bars: tuple[Bar, ...]
    peak: int
    accepted: int
    rejected: int
    width: int
    height: int
    top: int
    """The y of the plot's top (the peak's line)."""
    baseline: int
    days: tuple[tuple[int, str], ...]
    """x and label of each day's first hour (UTC)."""


def usage_chart(counts: Iterable[tuple[datetime, str, int]], now: datetime, days: int) -> Chart:
    """``counts``: (hour, outcome, uses). One bar per hour, oldest first, the last one being now's."""
    per_hour: dict[datetime, dict[str, int]] = {}
    for hour, outcome, uses in counts:
        per_hour.setdefault(hour, {})[outcome] = per_hour.get(hour, {}).get(outcome, 0) + uses
    last = now.replace(minute=0, second=0, microsecond=0)
    hours = [last - timedelta(hours=n) for n in reversed(range(days * 24))]
    peak = max((sum(per_hour.get(hour, {}).values()) for hour in hours), default=0)
    scale = (HEIGHT - BOTTOM - 10) / peak if peak else 0.0
    baseline = HEIGHT - BOTTOM
    bars = []
    day_marks = []
    for index, hour in enumerate(hours):
        found = per_hour.get(hour, {})
        accepted, rejected = found.get("accepted", 0), found.get("rejected", 0)
        x = LEFT + index * BAR_WIDTH
        accepted_height = accepted * scale
        rejected_height = rejected * scale
        bars.append(
            Bar(
                hour=hour,
                accepted=accepted,
                rejected=rejected,
                x=x,
                accepted_y=baseline - accepted_height,
                accepted_height=accepted_height,
                rejected_y=baseline - accepted_height - rejected_height,
                rejected_height=rejected_height,
            )
        )
        if hour.hour == 0:
            day_marks.append((x, hour.strftime("%b %d")))
    return Chart(
        bars=tuple(bars),
        peak=peak,
        accepted=sum(bar.accepted for bar in bars),
        rejected=sum(bar.rejected for bar in bars),
        width=LEFT + len(hours) * BAR_WIDTH + 40,  # room for the last day's label
        height=HEIGHT,
        top=10,
        baseline=baseline,
        days=tuple(day_marks),
    )
