"""Schemathesis hooks for ``tests/api/test_conformance.py`` (loaded by the ``st`` subprocess through
``SCHEMATHESIS_HOOKS``; not a test module).

Known deviation, enforced here: aiohttp's HTTP parser refuses a request line or a header longer than
8190 bytes with a text/plain 400 before any application code runs, so such a request never reaches
the API whose responses the conformance run checks. Cases that would exceed it are not sent.

Protection: the run authenticates as the session's admin, whose account other tests share. Its
tokens can be revoked, rotated or deleted through the API like any account's, so no case other than
a GET may name an id listed in ``TL_CONFORMANCE_PROTECTED_IDS`` (comma-separated) in its path.

Real ids in bodies: adding a member to a team (``POST /teams/{teamId}/system-accounts``) names the
account in its body, where a generated id never exists. When ``TL_CONFORMANCE_NEWCOMER_ID`` names a
seeded account, a body whose ``id`` is a well-formed UUID gets that account's id instead (another
well-formed UUID: a case that breaks the schema elsewhere still breaks it), so the operation is
reached (201 once, 409 after) whatever ids schemathesis happens to learn from earlier responses.
"""

import os
import uuid
from typing import Any
from urllib.parse import quote, urlencode

import schemathesis

MEMBERSHIP = ("POST", "/teams/{teamId}/system-accounts")

HTTP_PARSER_LIMIT = 8190
MARGIN = 512  # the method, the base path, the protocol version


def _request_line_length(case: schemathesis.Case[Any]) -> int:
    path = case.operation.path
    for name, value in (case.path_parameters or {}).items():
        path = path.replace("{" + name + "}", quote(str(value), safe=""))
    return len(path) + len(urlencode(case.query or {}, doseq=True))


def _longest_header(case: schemathesis.Case[Any]) -> int:
    return max((len(f"{name}: {value}") for name, value in (case.headers or {}).items()), default=0)


def _touches_protected(case: schemathesis.Case[Any]) -> bool:
    protected = set(filter(None, os.environ.get("TL_CONFORMANCE_PROTECTED_IDS", "").split(",")))
    named = {str(value) for value in (case.path_parameters or {}).values()}
    return case.method.upper() != "GET" and bool(protected & named)


@schemathesis.hook
def filter_case(context: schemathesis.HookContext, case: schemathesis.Case[Any]) -> bool:
    limit = HTTP_PARSER_LIMIT - MARGIN
    fits = _request_line_length(case) <= limit and _longest_header(case) <= limit
    return fits and not _touches_protected(case)


def _is_canonical_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


@schemathesis.hook
def before_call(
    context: schemathesis.HookContext, case: schemathesis.Case[Any], kwargs: dict[str, Any]
) -> None:
    newcomer = os.environ.get("TL_CONFORMANCE_NEWCOMER_ID")
    if not newcomer or (case.method.upper(), case.operation.path) != MEMBERSHIP:
        return
    body = case.body
    if isinstance(body, dict) and _is_canonical_uuid(body.get("id")):
        case.body = {**body, "id": newcomer}
