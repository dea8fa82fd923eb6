"""Konnect collection queries: pagination, declared filters, 400s naming the parameter as sent, the SQL
condition and the envelope."""

import json
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import MultiDict

from services.api.listing import (
    BoolFilter,
    Filter,
    FilterSpec,
    LabelFilter,
    ListQuery,
    StringFilter,
    collection,
    collection_response,
    list_query,
    parse_list_query,
    sql_conditions,
)
from services.api.problems import BadRequest

ACCOUNTS: dict[str, FilterSpec] = {
    "name": StringFilter(ops={"eq", "contains"}),
    "description": StringFilter(ops={"eq", "contains"}),
    "konnect_managed": BoolFilter(),
}
ROLES: dict[str, FilterSpec] = {
    "role_name": StringFilter(ops={"eq"}, bare_allowed=True),
    "entity_type_name": StringFilter(ops=("eq",), bare=True),
}
TEAMS: dict[str, FilterSpec] = {"name": StringFilter(), "labels": LabelFilter()}


def _parse(query: str, filters: Any = ACCOUNTS, **options: Any) -> ListQuery:
    pairs = [(name, value) for name, _, value in (part.partition("=") for part in query.split("&") if part)]
    return parse_list_query(MultiDict(pairs), filters, **options)


def _problems(query: str, filters: Any = ACCOUNTS, **options: Any) -> list[dict[str, Any]]:
    with pytest.raises(BadRequest) as caught:
        _parse(query, filters, **options)
    decoded: list[dict[str, Any]] = msgspec.json.decode(msgspec.json.encode(caught.value.invalid_parameters))
    return decoded


def test_defaults() -> None:
    query = _parse("")
    assert query == ListQuery(page_size=10, page_number=1, filters=())
    assert (query.limit, query.offset) == (10, 0)


def test_page_size_and_number() -> None:
    query = _parse("page[size]=25&page[number]=3")
    assert (query.page_size, query.page_number, query.offset) == (25, 3, 50)
    assert _parse("page[size]=100").page_size == 100


def test_empty_page_values_mean_the_defaults() -> None:
    assert _parse("page[size]=&page[number]=") == ListQuery(10, 1)


@pytest.mark.parametrize("value", ["abc", "1.5", "1e2", "ten", "0x10"])
def test_page_size_must_be_an_integer(value: str) -> None:
    assert _problems(f"page[size]={value}") == [
        {"field": "page[size]", "reason": "must be an integer", "rule": "is_integer", "source": "query"}
    ]


@pytest.mark.parametrize("value", ["101", "1000", "99999999999999999999999999"])
def test_page_size_above_100_is_max(value: str) -> None:
    assert _problems(f"page[size]={value}") == [
        {
            "field": "page[size]",
            "reason": "must be less than or equal to 100",
            "rule": "max",
            "source": "query",
            "maximum": 100,
        }
    ]


@pytest.mark.parametrize("query", ["page[size]=0", "page[size]=-5", "page[number]=0", "page[number]=-1"])
def test_pages_start_at_one(query: str) -> None:
    [problem] = _problems(query)
    assert (problem["field"], problem["rule"], problem["minimum"]) == (query.split("=")[0], "min", 1)


def test_string_filters() -> None:
    query = _parse("filter[name][eq]=Ops&filter[description][contains]=50%_off")
    assert query.filters == (
        Filter("name", "eq", "Ops"),
        Filter("description", "contains", "50%_off"),
    )


def test_boolean_filter_is_bare_and_accepts_eq() -> None:
    assert _parse("filter[konnect_managed]=true").filters == (Filter("konnect_managed", "eq", True),)
    assert _parse("filter[konnect_managed]=FALSE").filters == (Filter("konnect_managed", "eq", False),)
    assert _parse("filter[konnect_managed][eq]=false").filters == (Filter("konnect_managed", "eq", False),)


def test_boolean_filter_needs_true_or_false() -> None:
    assert _problems("filter[konnect_managed]=yes") == [
        {
            "field": "filter[konnect_managed]",
            "reason": "must be a boolean (true or false)",
            "rule": "is_boolean",
            "source": "query",
        }
    ]


def test_bare_string_filter_means_eq_where_allowed() -> None:
    assert _parse("filter[role_name]=Viewer&filter[entity_type_name][eq]=Control Planes", ROLES).filters == (
        Filter("role_name", "eq", "Viewer"),
        Filter("entity_type_name", "eq", "Control Planes"),
    )
    assert _parse("filter[entity_type_name]=APIs", ROLES).filters == (
        Filter("entity_type_name", "eq", "APIs"),
    )


def test_bare_string_filter_is_rejected_where_not_allowed() -> None:
    [problem] = _problems("filter[name]=Ops")
    assert (problem["field"], problem["rule"]) == ("filter[name]", "is_object")


def test_unsupported_operation_is_named_as_konnect_does() -> None:
    assert _problems("filter[name][startswith]=Op") == [
        {
            "field": "filter[name][startswith]",
            "reason": "[startswith] is not a supported filter operation",
            "source": "query",
        }
    ]
    assert _problems("filter[role_name][contains]=View", ROLES)[0]["reason"] == (
        "[contains] is not a supported filter operation"
    )
    assert (
        _problems("filter[konnect_managed][contains]=true")[0]["field"] == "filter[konnect_managed][contains]"
    )


def test_unknown_filter_field() -> None:
    assert _problems("filter[email][eq]=a@b.c") == [
        {
            "field": "filter[email][eq]",
            "reason": "[email] is not a supported filter field",
            "rule": "unknown_property",
            "source": "query",
        }
    ]


@pytest.mark.parametrize("name", ["sort", "filter", "filter[name", "page[after]", "pagesize"])
def test_unknown_query_parameters(name: str) -> None:
    assert _problems(f"{name}=x") == [
        {
            "field": name,
            "reason": "is not a supported query parameter",
            "rule": "unknown_property",
            "source": "query",
        }
    ]


def test_unpaginated_routes_reject_page_parameters() -> None:
    assert _parse("filter[role_name]=Admin", ROLES, paginated=False).page_size is None
    [problem] = _problems("page[size]=10", ROLES, paginated=False)
    assert (problem["field"], problem["rule"]) == ("page[size]", "unknown_property")


def test_too_deep_filters_are_rejected() -> None:
    [problem] = _problems("filter[name][eq][x]=1")
    assert (problem["field"], problem["rule"]) == ("filter[name][eq][x]", "invalid")


def test_repeated_parameters_are_rejected() -> None:
    [problem] = _problems("filter[name][eq]=a&filter[name][eq]=b")
    assert (problem["field"], problem["reason"]) == ("filter[name][eq]", "must not be repeated")


def test_every_problem_is_reported_in_order() -> None:
    fields = [p["field"] for p in _problems("page[size]=0&filter[name][like]=x&bogus=1")]
    assert fields == ["page[size]", "filter[name][like]", "bogus"]


def test_label_filters_in_both_spellings() -> None:
    query = _parse(
        "filter[labels.env][eq]=prod&filter[labels][team][contains]=ops&filter[labels.tier][exists]=true",
        TEAMS,
    )
    assert query.filters == (
        Filter("labels", "eq", "prod", key="env"),
        Filter("labels", "contains", "ops", key="team"),
        Filter("labels", "exists", True, key="tier"),
    )


def test_label_filter_errors() -> None:
    assert _problems("filter[labels.env][exists]=maybe", TEAMS)[0]["rule"] == "is_boolean"
    assert _problems("filter[labels][eq]=x", TEAMS)[0]["rule"] == "is_object"  # "eq" taken as the key
    assert _problems("filter[labels]=x", TEAMS)[0]["field"] == "filter[labels]"
    assert _problems("filter[labels.env][startswith]=x", TEAMS)[0]["reason"] == (
        "[startswith] is not a supported filter operation"
    )


def test_filter_declarations_are_checked() -> None:
    with pytest.raises(ValueError, match="operations"):
        StringFilter(ops={"eq", "startswith"})
    with pytest.raises(ValueError, match="operations"):
        LabelFilter(ops=set())


def test_list_query_reads_the_request() -> None:
    request = make_mocked_request("GET", "/v3/system-accounts?page%5Bsize%5D=5&filter%5Bname%5D%5Beq%5D=a")
    assert list_query(request, ACCOUNTS) == ListQuery(5, 1, (Filter("name", "eq", "a"),))


COLUMNS = {
    "name": "a.name",
    "description": "a.description",
    "konnect_managed": "a.konnect_managed",
    "labels": "t.labels",
}


def test_sql_without_filters_is_true() -> None:
    assert sql_conditions([], COLUMNS) == ("TRUE", [])


def test_sql_for_eq_contains_and_bool() -> None:
    filters = [
        Filter("name", "eq", "Ops"),
        Filter("description", "contains", "50%_off\\"),
        Filter("konnect_managed", "eq", False),
    ]
    sql, args = sql_conditions(filters, COLUMNS, first_param=3)
    assert sql == (
        "a.name = $3 AND a.description LIKE '%' || $4 || '%' ESCAPE '\\' AND a.konnect_managed = $5"
    )
    assert args == ["Ops", "50\\%\\_off\\\\", False]


def test_sql_for_labels() -> None:
    filters = [
        Filter("labels", "eq", "prod", key="env"),
        Filter("labels", "contains", "o_s", key="team"),
        Filter("labels", "exists", True, key="tier"),
        Filter("labels", "exists", False, key="legacy"),
    ]
    sql, args = sql_conditions(filters, COLUMNS)
    assert sql == (
        "(t.labels ->> $1) = $2"
        " AND (t.labels ->> $3) LIKE '%' || $4 || '%' ESCAPE '\\'"
        " AND jsonb_exists(t.labels, $5)"
        " AND NOT jsonb_exists(t.labels, $6)"
    )
    assert args == ["env", "prod", "team", "o\\_s", "tier", "legacy"]


def test_collection_envelope() -> None:
    query = ListQuery(page_size=10, page_number=2)
    assert collection([{"id": "a"}], query, 11) == {
        "meta": {"page": {"number": 2, "size": 10, "total": 11}},
        "data": [{"id": "a"}],
    }
    unpaginated = ListQuery(page_size=None, page_number=1)
    assert collection([1, 2], unpaginated, 2)["meta"] == {"page": {"number": 1, "size": 2, "total": 2}}


class Item(msgspec.Struct):
    id: str


def test_collection_response_encodes_structs() -> None:
    response = collection_response([Item("x")], ListQuery(10, 1), 1)
    assert response.status == 200
    assert response.content_type == "application/json"
    assert response.body is not None and isinstance(response.body, bytes)
    assert json.loads(response.body) == {
        "meta": {"page": {"number": 1, "size": 10, "total": 1}},
        "data": [{"id": "x"}],
    }
