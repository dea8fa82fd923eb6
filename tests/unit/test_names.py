"""The rule for names (services.names): the normal form is a fixed point, and a name that passes
holds no invisible character, so two accepted names that differ are told apart by what is seen."""

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from services.names import name_problem, normalize_name


@given(st.text())
def test_the_normal_form_is_a_fixed_point(name: str) -> None:
    normal = normalize_name(name)
    assert normalize_name(normal) == normal
    assert normal == normal.strip()
    assert unicodedata.is_normalized("NFC", normal)


@given(st.text())
def test_an_accepted_name_holds_no_invisible_character(name: str) -> None:
    normal = normalize_name(name)
    if name_problem(normal) is None:
        assert normal
        for char in normal:
            category = unicodedata.category(char)
            assert category not in {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}, repr(char)
            assert category != "Zs" or char == " ", repr(char)


@given(
    st.text(min_size=1), st.sampled_from(["\u200b", "\u200d", "\u2060", "\ufeff", "\u00a0", "\x00", "\u3164"])
)
def test_inserting_an_invisible_character_is_refused(name: str, invisible: str) -> None:
    """Inside a name: at its end, a whitespace one would be trimmed like any other."""
    assert name_problem(normalize_name(f"a{invisible}{name}z")) is not None


def test_case_is_kept() -> None:
    assert normalize_name(" Admin ") == "Admin"
    assert name_problem("Admin") is None
