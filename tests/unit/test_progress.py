"""``services.progress.reporting``: a rich bar (done / total, rate, time left) on a terminal, plain
lines otherwise."""

import io
import sys

import pytest

from services import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(progress, "PLAIN_EVERY", 0.0)
    with progress.reporting("exporting", 3) as advance:
        for _ in range(3):
            advance(1)
    lines = err.getvalue().splitlines()
    assert lines[0].startswith("exporting: 1/3 events (") and lines[-1].startswith("exporting: 3/3 events (")
    assert len(lines) == 4  # one a step here (PLAIN_EVERY 0), and the last


def test_a_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    with progress.reporting("importing", 2500) as advance:
        for _ in range(2500):
            advance(1)
    shown = err.getvalue()
    assert "importing" in shown and "2500/2500" in shown and "events/s" in shown


def test_no_total_is_a_count(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    with progress.reporting("exporting", None) as advance:
        advance(7)
    assert err.getvalue().startswith("exporting: 7 events (")
