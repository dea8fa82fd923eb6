"""What this version reads differently from the release fixture log, on purpose, and nothing else.

``tests/fixtures/release_log/read_models.json`` is what the release made of its log, and is never
regenerated. A change in how a stored log is read is a decision: it is listed here, as a function
of the release's read models (and, where it depends on them, the log's events), and
``tests/integration/test_release_log.py`` holds the rebuild to the release's read models with
exactly these changes applied, byte for byte. A change not listed here still fails that test.

The changes:

- issue 12, point 13: ``token.extended`` moves ``rm_tokens.updated_at`` (``updated_at`` moves
  whenever ``expires_at`` does), so a token's ``updated_at`` is its latest extension's time when
  that is later than the release's value.
- issue 12, point 8: ``rm_accounts`` has ``expires_at``, the end of an account's lifetime; no
  account of the release had one, so it is null in every row. (The lifetimes' due index,
  ``rm_account_deadlines``, is new and not in the release's dump.)
- issue 16: ``rm_tokens`` has ``federated_credential_id``, the federated credential a token was
  obtained through by the OIDC token exchange; no token of the release was, so it is null in every
  row. (``rm_federated_credentials`` is new and not in the release's dump.)
"""

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

Tables = dict[str, list[dict[str, Any]]]


def _jsonb_text(row: dict[str, Any]) -> bytes:
    """``to_jsonb(row)::text`` of a flat row: keys by length then bytes, jsonb's separators (the
    order ``canonical_dump`` sorts rows by)."""
    keys = sorted(row, key=lambda key: (len(key.encode()), key.encode()))
    fields = (
        f"{json.dumps(key, ensure_ascii=False)}: {json.dumps(row[key], ensure_ascii=False)}" for key in keys
    )
    return ("{" + ", ".join(fields) + "}").encode()


def _timestamptz(text: str) -> str:
    """An RFC 3339 instant of the log as ``to_jsonb`` renders a timestamptz in UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds")


def _events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_bytes().splitlines()]


def _extensions_move_updated_at(tables: Tables, log: Path) -> None:
    latest: dict[str, str] = {}
    for event in _events(log):
        if event["type"] == "token.extended":
            latest[event["data"]["token_id"]] = _timestamptz(event["occurred_at"])
    for row in tables["tokens"]:
        extended_at = latest.get(row["token_id"])
        if extended_at is not None and datetime.fromisoformat(extended_at) > datetime.fromisoformat(
            row["updated_at"]
        ):
            row["updated_at"] = extended_at


def _accounts_have_a_lifetime(tables: Tables, _log: Path) -> None:
    for row in tables["accounts"]:
        row["expires_at"] = None


def _tokens_know_their_federated_credential(tables: Tables, _log: Path) -> None:
    for row in tables["tokens"]:
        row["federated_credential_id"] = None


CHANGES: tuple[Callable[[Tables, Path], None], ...] = (
    _extensions_move_updated_at,
    _accounts_have_a_lifetime,
    _tokens_know_their_federated_credential,
)
"""Each change, in the order of the list above: it edits the release's tables in place."""


def read_now(release: bytes, log: Path, changes: Sequence[Callable[[Tables, Path], None]] = CHANGES) -> bytes:
    """The release's read models (``canonical_dump`` bytes) as this version reads ``log``."""
    tables: Tables = json.loads(release)
    for change in changes:
        change(tables, log)
    for rows in tables.values():
        rows.sort(key=_jsonb_text)
    return (json.dumps(tables, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()
