"""Text a client chose, made fit to be written down: stored in a text column or a JSON event, or
written to a log line.

Whatever a request carries that the service records (the path of a request no route matches, the
``User-Agent``, the remote address) is hostile: it may hold a NUL (which PostgreSQL text and jsonb
refuse), bytes that are not UTF-8 (aiohttp hands them over as lone surrogates, which no UTF-8
encoder accepts), line breaks and terminal escapes (which forge or hide log lines), invisible
format characters, or a secret the client pasted where it did not belong. ``recordable`` turns any
such text into one that is always storable and safe to show, in three steps:

1. **Secrets redacted**: ``spat_`` (any case) and the run of base62 characters after it, and any
   bare run of at least ``MIN_BARE_SECRET`` base62 characters not all of one kind (digits only,
   capitals only, small letters only: a secret pasted without its prefix), become
   ``[redacted]``. This runs on the whole text, before it is bounded, so a secret cut by the bound
   is never left half in clear.
2. **Non-printing characters escaped**: every character of a Unicode ``C*`` category (controls,
   NUL, DEL, C1, format characters such as U+200B or the bidirectional overrides, surrogates,
   private-use and unassigned code points), the line and paragraph separators, and the backslash
   itself, written as a Python-style escape (``\\x00``, ``\\u202e``, ``\\udcff``, ``\\x5c``). Escaping
   the backslash keeps the result unambiguous: ``\\x0a`` in a record always means the client sent a
   line feed, never that it typed those four characters.
3. **Bounded**: at most ``limit`` characters, never cutting an escape in two.

``log_field`` is the same with the double quote escaped too, for a field a log line quotes.
"""

import re
import unicodedata

REDACTED = "[redacted]"
MIN_BARE_SECRET = 40
"""The shortest bare base62 run taken for a secret (a ``spat_`` secret's body is 50)."""
MAX_INPUT = 16 * 1024
"""Longer input is cut here before anything else (the HTTP parser already bounds header lines)."""

_BASE62 = "[0-9A-Za-z]"
_PREFIXED_SECRET = re.compile(rf"[sS][pP][aA][tT]_{_BASE62}*")
_LONG_RUN = re.compile(rf"(?<!{_BASE62}){_BASE62}{{{MIN_BARE_SECRET},}}")
"""A whole run of at least ``MIN_BARE_SECRET`` (never a match starting inside a run)."""
_ONE_KIND = re.compile(r"[0-9]+|[A-Z]+|[a-z]+")
_CUT_SHORT_RUN = re.compile(rf"(?<!{_BASE62}){_BASE62}{{1,{MIN_BARE_SECRET - 1}}}\Z")
_PLAIN = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
"""Printable ASCII but the backslash and the double quote: the common case, which needs no escape."""
_SEPARATORS = frozenset({"Zl", "Zp"})


def _escape(character: str) -> str:
    code = ord(character)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _needs_escape(character: str, quote: bool) -> bool:
    if character == "\\" or (quote and character == '"'):
        return True
    category = unicodedata.category(character)
    return category[0] == "C" or category in _SEPARATORS


def _redacted(text: str) -> str:
    if len(text) > MAX_INPUT:
        # A run cut here may be the start of a secret, now too short to be recognised: drop it.
        text = _CUT_SHORT_RUN.sub("", text[:MAX_INPUT])
    return _LONG_RUN.sub(_unless_one_kind, _PREFIXED_SECRET.sub(REDACTED, text))


def _unless_one_kind(run: re.Match[str]) -> str:
    return run[0] if _ONE_KIND.fullmatch(run[0]) else REDACTED


def _visible(text: str, limit: int, quote: bool) -> str:
    text = _redacted(text)
    if _PLAIN.fullmatch(text):
        return text[:limit]
    pieces: list[str] = []
    length = 0
    for character in text:
        piece = _escape(character) if _needs_escape(character, quote) else character
        if length + len(piece) > limit:
            break
        pieces.append(piece)
        length += len(piece)
    return "".join(pieces)


def recordable(text: str | None, limit: int) -> str | None:
    """``text`` with secrets redacted, non-printing characters escaped, at most ``limit``
    characters (see the module docstring); None for None or the empty string."""
    if not text:
        return None
    return _visible(text, limit, quote=False)


def log_field(text: str, limit: int) -> str:
    """``recordable`` for a field a log line puts between double quotes: the quote is escaped too."""
    return _visible(text, limit, quote=True)
