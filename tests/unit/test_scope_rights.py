"""The rights a token's scopes name, and how they are named back to a person: the aliases of the
first releases expand to whole families, and a whole family missing is named by its alias."""

import pytest

from services.authorization import (
    READ_RIGHTS,
    SCOPES,
    WRITE_RIGHTS,
    Right,
    check_scopes,
    describe,
    scope_rights,
)
from services.commands import Invalid


def test_the_aliases_expand_to_their_families_and_the_rights_to_themselves() -> None:
    assert scope_rights(["identity:read"]) == READ_RIGHTS
    assert scope_rights(["identity:write", "audit:read"]) == WRITE_RIGHTS | {Right.AUDIT}
    assert scope_rights(["teams:write", "tokens:read"]) == {Right.TEAMS_WRITE, Right.TOKENS_READ}
    assert scope_rights([]) == frozenset()
    assert READ_RIGHTS | WRITE_RIGHTS | {Right.AUDIT, Right.INTROSPECT, Right.METRICS} == set(Right)


def test_a_whole_family_is_named_by_its_alias_the_rest_one_by_one() -> None:
    assert describe(set(Right)) == [
        "identity:read",
        "identity:write",
        "audit:read",
        "tokens:introspect",
        "metrics:read",
    ]
    assert describe(READ_RIGHTS - {Right.ROLES_READ} | {Right.TEAMS_WRITE}) == [
        "accounts:read",
        "tokens:read",
        "teams:read",
        "teams:write",
    ]
    assert describe(set()) == []


@pytest.mark.parametrize("scopes", [["accounts:reed"], ["identity:admin"], ["*"]])
def test_an_unknown_scope_is_refused_with_the_names_a_scope_may_take(scopes: list[str]) -> None:
    with pytest.raises(Invalid) as refused:
        check_scopes(scopes)
    assert (refused.value.field, refused.value.rule, refused.value.choices) == ("scopes[0]", "enum", SCOPES)
