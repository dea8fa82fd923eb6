"""``services.client_text``: whatever a client sends comes out storable (valid UTF-8, no U+0000),
printable (no control, format or separator character), bounded, unambiguous, and without a secret."""

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.client_text import MAX_INPUT, REDACTED, log_field, recordable
from services.tokens.secrets import PREFIX, generate_secret

ANY_TEXT = st.text(st.characters(categories=None), max_size=600)
"""Every code point: NUL, controls, lone surrogates, bidi overrides, separators, astral planes."""


def _printable(text: str) -> bool:
    return all(
        unicodedata.category(c)[0] != "C" and unicodedata.category(c) not in ("Zl", "Zp") for c in text
    )


@given(text=ANY_TEXT, limit=st.integers(min_value=1, max_value=300))
def test_any_text_comes_out_storable_printable_and_bounded(text: str, limit: int) -> None:
    for result in (recordable(text, limit) or "", log_field(text, limit)):
        result.encode("utf-8")  # no lone surrogate
        assert "\x00" not in result and _printable(result)
        assert len(result) <= limit


@given(text=ANY_TEXT)
def test_nothing_is_lost_or_ambiguous_below_the_bound(text: str) -> None:
    """Within the bound and without a secret, the escapes decode back to exactly the input: the
    backslash is escaped too, so no client text can pass for an escape."""
    result = recordable(text, 10 * len(text) + 10) or ""
    if REDACTED in result:
        return
    assert result.encode("raw_unicode_escape").decode("unicode_escape") == text


def test_what_attacks_the_logs_is_escaped() -> None:
    assert recordable("GET /v3/nope\x00", 200) == "GET /v3/nope\\x00"
    assert recordable("curl/\udcff", 256) == "curl/\\udcff"
    assert recordable("a\nb\r\x1b[31m\u202e\u2028\\", 200) == "a\\x0ab\\x0d\\x1b[31m\\u202e\\u2028\\x5c"
    assert log_field('x" 200 0 0.1ms', 200) == "x\\x22 200 0 0.1ms"
    assert recordable('a "quoted" agent', 200) == 'a "quoted" agent'  # quotes matter only in a log line
    assert recordable("", 10) is None and recordable(None, 10) is None


def test_an_escape_is_never_cut_in_two() -> None:
    assert recordable("abc\x00", 5) == "abc"
    assert recordable("abc\x00", 7) == "abc\\x00"


@given(
    before=st.text(max_size=50),
    after=st.text(max_size=50),
    prefix=st.sampled_from([PREFIX, "SPAT_", "Spat_", ""]),
    limit=st.integers(min_value=1, max_value=200),
)
def test_no_secret_survives_in_clear(before: str, after: str, prefix: str, limit: int) -> None:
    """A secret, with any-case prefix or without it, anywhere in any text: never in the result, not
    even its first few characters once the result is bounded."""
    secret = generate_secret()
    body = secret.removeprefix(PREFIX)
    for result in (
        recordable(before + prefix + body + after, limit) or "",
        log_field(before + secret, limit),
    ):
        assert body[:12] not in result


def test_a_secret_cut_by_the_input_bound_is_not_left_half_in_clear() -> None:
    body = generate_secret().removeprefix(PREFIX)
    text = "x" * (MAX_INPUT - 20) + "/" + body
    assert body[:19] not in (recordable(text, MAX_INPUT) or "")


@pytest.mark.parametrize(
    "kept",
    [
        "GET /v3/system-accounts/{accountId}/access-tokens/{tokenId}",
        "GET /v3/system-accounts/7c1ef7bc-0e5b-4ad8-a1b6-a3a09b4ab1fe",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
        "A" * 100,
        "2001:db8::8a2e:370:7334",
    ],
)
def test_ordinary_text_is_kept_as_it_is(kept: str) -> None:
    assert recordable(kept, 200) == kept
