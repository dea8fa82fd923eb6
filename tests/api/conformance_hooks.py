"""Schemathesis hooks for ``tests/api/test_conformance.py`` (loaded by the ``st`` subprocess through
``SCHEMATHESIS_HOOKS``; not a test module).

Known deviation, enforced here: aiohttp's HTTP parser refuses a request line or a header longer than
8190 bytes with a text/plain 400 before any application code runs, so such a request never reaches
the API whose responses the conformance run checks. Cases that would exceed it are not sent.

Protection: the run authenticates as the session's admin, whose account other tests share. Its
tokens can be revoked, rotated or deleted through the API like any account's, so no case other than
a GET may name an id listed in ``TL_CONFORMANCE_PROTECTED_IDS`` (comma-separated) in its path.
"""

import os
from typing import Any
from urllib.parse import quote, urlencode

import schemathesis

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
