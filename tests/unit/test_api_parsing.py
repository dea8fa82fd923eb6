"""Request bodies decoded with msgspec into Konnect 400s (one focused test per rule), body limits and
content types, and UUID path parameters."""

import enum
import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from services.api.parsing import (
    MAX_BODY_BYTES,
    AwareDateTime,
    body_error,
    decode_body,
    raw_body,
    read_body,
    uuid_path_param,
)
from services.api.problems import BadRequest, InvalidParameter, NotFound, problem_middleware

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=10)]
LabelKey = Annotated[str, msgspec.Meta(min_length=1, max_length=5)]
LabelValue = Annotated[str, msgspec.Meta(min_length=1, max_length=4)]


class Region(enum.Enum):
    US = "us"
    EU = "eu"


class Child(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    size: int


class Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    enabled: bool = False
    count: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1
    entity_id: uuid.UUID | None = None
    expires_at: AwareDateTime | None = None
    labels: Annotated[dict[LabelKey, LabelValue | None], msgspec.Meta(max_length=2)] | None = None
    tags: list[str] = []
    region: Literal["us", "eu", "*"] = "us"
    zone: Region = Region.US
    child: Child | None = None
    children: list[Child] = []
    optional_labels: dict[str, LabelValue] | msgspec.UnsetType | None = msgspec.UNSET


class Checked(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str

    def __post_init__(self) -> None:
        if self.name.startswith("kong"):
            raise body_error("name", "cannot start with kong", "invalid")


def _only_problem(raw: str | bytes, type_: Any = Body) -> dict[str, Any]:
    data = raw.encode() if isinstance(raw, str) else raw
    with pytest.raises(BadRequest) as caught:
        decode_body(data, type_)
    items = caught.value.invalid_parameters
    assert items is not None and len(items) == 1
    decoded: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(items[0]))
    return decoded


def test_a_valid_body_decodes() -> None:
    body = decode_body(b'{"name":"a","expires_at":"2019-08-24T14:15:22Z","labels":{"env":"test"}}', Body)
    assert body.name == "a"
    assert body.expires_at is not None and body.expires_at.utcoffset() is not None
    assert body.labels == {"env": "test"}


def test_malformed_json_is_request_format_is_invalid() -> None:
    assert _only_problem('{"name": "a",') == {
        "field": "body",
        "reason": "request format is invalid",
        "source": "body",
    }


@pytest.mark.parametrize("raw", ["[]", '"name"', "null", "42"])
def test_a_body_that_is_not_an_object_is_rejected(raw: str) -> None:
    assert _only_problem(raw) == {
        "field": "body",
        "reason": "request format is invalid",
        "rule": "is_object",
        "source": "body",
    }


def test_an_empty_body_reads_as_an_empty_object() -> None:
    assert _only_problem(b"") == {
        "field": "name",
        "reason": "is a required field",
        "rule": "required",
        "source": "body",
    }
    assert decode_body(b"  ", Small) == Small()  # an all-optional body may be left out


def test_missing_required_field() -> None:
    assert _only_problem("{}")["rule"] == "required"
    assert _only_problem('{"name":"a","child":{}}') == {
        "field": "child.size",
        "reason": "is a required field",
        "rule": "required",
        "source": "body",
    }


def test_unknown_property_names_the_unknown_field() -> None:
    assert _only_problem('{"name":"a","colour":"red"}') == {
        "field": "colour",
        "reason": "is not a known property",
        "rule": "unknown_property",
        "source": "body",
    }
    assert _only_problem('{"name":"a","child":{"size":1,"weight":2}}')["field"] == "child.weight"


@pytest.mark.parametrize(
    ("raw", "field", "rule"),
    [
        ('{"name":1}', "name", "is_string"),
        ('{"name":"a","enabled":"yes"}', "enabled", "is_boolean"),
        ('{"name":"a","count":"3"}', "count", "is_integer"),
        ('{"name":"a","count":1.5}', "count", "is_integer"),
        ('{"name":"a","count":true}', "count", "is_integer"),
        ('{"name":"a","tags":"x"}', "tags", "is_array"),
        ('{"name":"a","tags":["x",2]}', "tags[1]", "is_string"),
        ('{"name":"a","labels":[]}', "labels", "is_object"),
        ('{"name":"a","child":5}', "child", "is_object"),
        ('{"name":"a","children":[{"size":1},{"size":"big"}]}', "children[1].size", "is_integer"),
        ('{"name":"a","entity_id":5}', "entity_id", "is_uuid"),
    ],
)
def test_wrong_types_name_the_path_and_the_expected_type(raw: str, field: str, rule: str) -> None:
    problem = _only_problem(raw)
    assert (problem["field"], problem["rule"], problem["source"]) == (field, rule, "body")


def test_wrong_type_inside_a_map_names_the_key() -> None:
    assert _only_problem('{"name":"a","labels":{"ok":"x","env":1}}') == {
        "field": "labels.env",
        "reason": "must be a string",
        "rule": "is_string",
        "source": "body",
    }
    problem = _only_problem('{"name":"a","optional_labels":{"env":true}}')
    assert (problem["field"], problem["rule"]) == ("optional_labels.env", "is_string")


def test_invalid_uuid() -> None:
    assert _only_problem('{"name":"a","entity_id":"not-a-uuid"}') == {
        "field": "entity_id",
        "reason": "must be a valid UUID",
        "rule": "is_uuid",
        "source": "body",
    }


@pytest.mark.parametrize(
    "value",
    ["tomorrow", "2019-08-24", "2019-08-24T14:15:22", "2019-02-30T00:00:00Z", "2019-08-24T14:15:22+25:00"],
)
def test_invalid_or_naive_date_times(value: str) -> None:
    problem = _only_problem(json.dumps({"name": "a", "expires_at": value}))
    assert (problem["field"], problem["rule"]) == ("expires_at", "is_date_time")
    assert "timezone" in problem["reason"]


def test_over_long_string_is_max_length_with_maximum() -> None:
    assert _only_problem('{"name":"abcdefghijk"}') == {
        "field": "name",
        "reason": "must not have more than 10 characters",
        "rule": "max_length",
        "source": "body",
        "maximum": 10,
    }
    problem = _only_problem('{"name":"a","labels":{"env":"toolong"}}')
    assert (problem["field"], problem["rule"], problem["maximum"]) == ("labels.env", "max_length", 4)


def test_over_long_map_key_names_the_key() -> None:
    problem = _only_problem('{"name":"a","labels":{"fine":"x","waytoolong":"x"}}')
    assert (problem["field"], problem["rule"], problem["maximum"]) == ("labels.waytoolong", "max_length", 5)
    assert problem["reason"].startswith("key ")


def test_empty_string_where_one_character_is_needed_is_min_length() -> None:
    assert _only_problem('{"name":""}') == {
        "field": "name",
        "reason": "cannot be blank",
        "rule": "min_length",
        "source": "body",
        "minimum": 1,
    }


def test_too_many_map_entries_is_max_items() -> None:
    problem = _only_problem('{"name":"a","labels":{"a":"1","b":"2","c":"3"}}')
    assert (problem["field"], problem["rule"], problem["maximum"]) == ("labels", "max_items", 2)


def test_numeric_bounds_are_min_and_max() -> None:
    low = _only_problem('{"name":"a","count":0}')
    assert (low["rule"], low["minimum"]) == ("min", 1)
    high = _only_problem('{"name":"a","count":101}')
    assert (high["rule"], high["maximum"]) == ("max", 100)


def test_enum_violations_list_the_choices() -> None:
    assert _only_problem('{"name":"a","region":"mars"}') == {
        "field": "region",
        "reason": "is not one of the allowed values",
        "rule": "enum",
        "source": "body",
        "choices": ["us", "eu", "*"],
    }
    assert _only_problem('{"name":"a","zone":"mars"}')["choices"] == ["us", "eu"]


def test_checks_a_struct_cannot_declare_can_raise_body_error() -> None:
    assert _only_problem('{"name":"kong-team"}', Checked) == {
        "field": "name",
        "reason": "cannot start with kong",
        "rule": "invalid",
        "source": "body",
    }


class Small(msgspec.Struct, forbid_unknown_fields=True):
    name: str = ""


async def _echo(request: web.Request) -> web.Response:
    body = await read_body(request, Small)
    again = await raw_body(request)  # cached: the stream is read once
    return web.json_response({"name": body.name, "bytes": len(again)})


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(middlewares=[problem_middleware])
    app.router.add_post("/echo", _echo)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_read_body_reads_json(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.post("/echo", json={"name": "x"})
    assert response.status == 200
    assert await response.json() == {"name": "x", "bytes": len(json.dumps({"name": "x"}))}


async def test_read_body_accepts_an_empty_body_without_content_type(
    client: TestClient[web.Request, web.Application],
) -> None:
    response = await client.post("/echo")
    assert response.status == 200
    assert (await response.json())["name"] == ""


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
async def test_non_json_content_types_are_415(
    client: TestClient[web.Request, web.Application], content_type: str
) -> None:
    response = await client.post("/echo", data=b'{"name":"x"}', headers={"Content-Type": content_type})
    assert response.status == 415
    assert response.headers["Content-Type"] == "application/problem+json"


async def test_json_suffix_and_utf8_charset_are_accepted(
    client: TestClient[web.Request, web.Application],
) -> None:
    for content_type in ("application/merge-patch+json", "application/json; charset=UTF-8"):
        response = await client.post("/echo", data=b'{"name":"x"}', headers={"Content-Type": content_type})
        assert response.status == 200, content_type


async def test_bodies_over_the_limit_are_413(client: TestClient[web.Request, web.Application]) -> None:
    big = json.dumps({"name": "x" * MAX_BODY_BYTES}).encode()
    response = await client.post("/echo", data=big, headers={"Content-Type": "application/json"})
    assert response.status == 413
    assert (await response.json())["title"] == "Payload Too Large"


async def test_chunked_bodies_over_the_limit_are_413(
    client: TestClient[web.Request, web.Application],
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name":"'
        for _ in range(MAX_BODY_BYTES // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'

    response = await client.post("/echo", data=chunks(), headers={"Content-Type": "application/json"})
    assert response.status == 413


async def test_the_http_400_names_the_field(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.post("/echo", json={"name": 3})
    assert response.status == 400
    body = await response.json()
    assert body["title"] == "Bad Request"
    assert body["invalid_parameters"] == [
        {"field": "name", "reason": "must be a string", "rule": "is_string", "source": "body"}
    ]


def _request(value: str) -> web.Request:
    return make_mocked_request("GET", f"/teams/{value}", match_info={"teamId": value})


def test_uuid_path_param_accepts_any_canonical_uuid() -> None:
    value = "D32D905A-ED33-46A3-A093-D8F536AF9A8A"
    assert uuid_path_param(_request(value), "teamId") == uuid.UUID(value)
    deterministic = str(uuid.uuid5(uuid.NAMESPACE_URL, "x"))  # not v4: still an id
    assert str(uuid_path_param(_request(deterministic), "teamId")) == deterministic


@pytest.mark.parametrize(
    "value", ["nope", "d32d905aed3346a3a093d8f536af9a8a", "{d32d905a-ed33-46a3-a093-d8f536af9a8a}"]
)
def test_malformed_uuid_path_param_is_a_400_naming_the_param(value: str) -> None:
    with pytest.raises(BadRequest) as caught:
        uuid_path_param(_request(value), "teamId")
    assert caught.value.invalid_parameters == (
        InvalidParameter(field="teamId", reason="invalid ID format", rule="is_uuid", source="path"),
    )
    with pytest.raises(BadRequest) as renamed:
        uuid_path_param(_request(value), "teamId", field="teamID")
    assert renamed.value.invalid_parameters is not None
    assert renamed.value.invalid_parameters[0].field == "teamID"


def test_malformed_uuid_path_param_can_be_a_404_for_string_typed_ids() -> None:
    with pytest.raises(NotFound) as caught:
        uuid_path_param(_request("nope"), "teamId", malformed="not_found", not_found_detail="No such account")
    assert caught.value.detail == "No such account"
