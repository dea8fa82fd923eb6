"""Progress of long administrative work (``projections rebuild``, ``audit export|import|verify|replay``).

The work reports through a plain callable, ``advance(count)``, so the code doing it (the audit
actions, the projection builder) knows nothing of terminals. ``reporting`` gives one: on a terminal
(stderr) a rich bar with done / total, the rate and the time left; otherwise a plain line every
``PLAIN_EVERY`` seconds and one at the end, so a log file or CI shows the work moving too. Counts are
batched before they reach rich: a call per event costs next to nothing.
"""

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

Advance = Callable[[int], None]
PLAIN_EVERY = 5.0
_BATCH = 1000


class _Plain:
    def __init__(self, what: str, total: int | None, unit: str) -> None:
        self.what, self.total, self.unit = what, total, unit
        self.done = 0
        self.started = self.shown = time.monotonic()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        of = f"/{self.total}" if self.total is not None else ""
        return f"{self.what}: {self.done}{of} {self.unit} ({self.done / elapsed:,.0f}/s, {elapsed:.1f}s)"

    def advance(self, count: int) -> None:
        self.done += count
        if time.monotonic() - self.shown >= PLAIN_EVERY:
            self.shown = time.monotonic()
            print(self.line(), file=sys.stderr, flush=True)


class _Bar:
    def __init__(self, what: str, total: int | None, unit: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit),
            _rate_column(unit),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._task = self._progress.add_task(what, total=total)
        self._pending = 0

    def __enter__(self) -> "_Bar":
        self._progress.start()
        return self

    def advance(self, count: int) -> None:
        self._pending += count
        if self._pending >= _BATCH:
            self.flush()

    def flush(self) -> None:
        self._progress.advance(self._task, self._pending)
        self._pending = 0

    def close(self) -> None:
        self.flush()
        self._progress.stop()


def _rate_column(unit: str) -> Any:
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} {unit}/s" if speed else "")

    return Rate()


@contextlib.contextmanager
def reporting(what: str, total: int | None, unit: str = "events") -> Iterator[Advance]:
    """``with reporting("exporting", total) as advance: ... advance(n) ...``"""
    if sys.stderr.isatty():
        bar = _Bar(what, total, unit).__enter__()
        try:
            yield bar.advance
        finally:
            bar.close()
        return
    plain = _Plain(what, total, unit)
    yield plain.advance
    print(plain.line(), file=sys.stderr, flush=True)
