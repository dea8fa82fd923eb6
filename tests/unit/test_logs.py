"""``services.logs.configure_logging``: the two formats, the level, and a clear refusal of a bad
value of either variable (one line, exit code 2, from the command line)."""

import json
import logging
from collections.abc import Iterator

import pytest

from services.cli import main
from services.config import ConfigError
from services.logs import FIELDS, configure_logging


@pytest.fixture(autouse=True)
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_are_one_object_each_with_the_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging({"TOKENLEDGER_LOG_FORMAT": "json"})
    log = logging.getLogger("tokenledger.test")
    log.info("served %s", "a\nb\x1b[2J", extra={FIELDS: {"request_id": "r1", "status": 200}})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "served a\nb\x1b[2J" and "\x1b" not in lines[0]
    assert (first["request_id"], first["status"], first["level"]) == ("r1", 200, "INFO")
    assert first["logger"] == "tokenledger.test" and first["time"].endswith("Z")
    assert second["level"] == "ERROR" and "ValueError: boom" in second["exception"]


def test_text_is_the_default_and_the_level_is_honoured(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging({"TOKENLEDGER_LOG_LEVEL": "warning"})
    log = logging.getLogger("tokenledger.test")
    log.info("hidden")
    log.warning("shown")
    err = capsys.readouterr().err
    assert "hidden" not in err
    assert err.rstrip().endswith("WARNING tokenledger.test: shown")


@pytest.mark.parametrize(
    ("variable", "value"), [("TOKENLEDGER_LOG_FORMAT", "yaml"), ("TOKENLEDGER_LOG_LEVEL", "loud")]
)
def test_a_bad_value_is_refused(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        configure_logging({variable: value})


def test_the_command_line_refuses_a_bad_value_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TOKENLEDGER_LOG_FORMAT", "xml")
    assert main(["migrate"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "tokenledger: configuration error: TOKENLEDGER_LOG_FORMAT: expected one of text, json; got 'xml'"
    ]
