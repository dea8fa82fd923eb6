"""The rule for names of system accounts, access tokens and teams: their normal form, and the
characters a name may not hold. It exists so that two names a person reads as the same are the same
string (``admin``, ``admin `` and ``ad\\u200bmin`` cannot coexist as different accounts).

* Normal form (``normalize_name``): Unicode NFC, then surrounding whitespace trimmed. A new name is
  stored, claimed for uniqueness and compared in this form; the API normalises what a client sends
  before the command sees it.
* Refused (``name_problem``): an empty name once trimmed, and any character that is invisible or
  renders as blank: the Unicode categories Cc (controls), Cf (format, e.g. U+200B, U+200D, U+FEFF,
  bidi overrides), Cs (surrogates), Co (private use), Cn (unassigned: nothing to render, and a
  later Unicode version may make them format characters), Zl and Zp (line and paragraph
  separators), every space separator but U+0020 (U+00A0, U+2000..U+200A, U+3000...), and the
  default-ignorable or blank characters of other categories (``BLANK_CHARACTERS``: the combining
  grapheme joiner, variation selectors, Hangul fillers, the Braille blank...).
* Case is kept and compared as is: ``Admin`` and ``admin`` are two names, as in Konnect, whose
  names are case-sensitive.

Names already in the event log are loaded as they were stored; the rule applies to the names that
new commands write.
"""

import unicodedata

from services.commands import Invalid

REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_VARIATION_SELECTORS = {chr(c) for c in (*range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0))}
BLANK_CHARACTERS = frozenset(
    {
        "\u034f",  # combining grapheme joiner
        "\u115f",  # Hangul choseong filler
        "\u1160",  # Hangul jungseong filler
        "\u17b4",  # Khmer vowel inherent aq
        "\u17b5",  # Khmer vowel inherent aa
        "\u180b",  # Mongolian free variation selectors
        "\u180c",
        "\u180d",
        "\u180f",
        "\u2800",  # Braille pattern blank
        "\u3164",  # Hangul filler
        "\uffa0",  # halfwidth Hangul filler
        *_VARIATION_SELECTORS,
    }
)
RULE = (
    "Unicode NFC with surrounding whitespace trimmed; no control, format, invisible or blank "
    "characters and no space other than U+0020; case-sensitive"
)


def normalize_name(name: str) -> str:
    """``name`` in its normal form: NFC, surrounding whitespace trimmed."""
    return unicodedata.normalize("NFC", name).strip()


def _refused(char: str) -> bool:
    category = unicodedata.category(char)
    return category in REFUSED_CATEGORIES or (category == "Zs" and char != " ") or char in BLANK_CHARACTERS


def name_problem(name: str) -> str | None:
    """Why the normalised ``name`` may not be a new name, or None when it may."""
    if not name:
        return "cannot be blank"
    refused = next((char for char in name if _refused(char)), None)
    if refused is not None:
        return (
            f"must not contain U+{ord(refused):04X}: a name holds no control, format, invisible or "
            "blank character and no space other than U+0020"
        )
    return None


def check_new_name(name: str, field: str = "name") -> None:
    """The domain's guard for a name a command is about to write: ``Invalid`` unless it is in
    normal form and holds no refused character (the API normalises before it gets here)."""
    problem = name_problem(name) if name == normalize_name(name) else "must be in normal form (NFC, trimmed)"
    if problem is not None:
        raise Invalid(field, problem)
