"""Property: whatever a client puts in a query parameter or a body field of any route, the answer is
never a 5xx, a refusal is an ``application/problem+json`` 4xx, and a refused request wrote nothing
to the event log.

The routes and their parameters come from the served OpenAPI document (which
``tests/unit/test_openapi_matches_server.py`` holds to the request Structs): every operation, every
query parameter it declares (a ``filter`` object expanded into each of its filters, bare and with
each operation), ``as_of`` and the pagination parameters on every GET, and every property of its
request body. Each case puts one hostile value (huge integers, Unicode digits, NUL, lone
surrogates, invalid UTF-8, dates that overflow once their offset is applied, deep nesting, long or
invisible text) into one of them, the other fields of the body being valid.
"""

import urllib.parse
import uuid
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.api.openapi.document import build_document, operations
from services.composition import Runtime
from tests.api.helpers import in_days, log_head
from tests.api.identity_support import PROBLEM_CONTENT_TYPE
from tests.api.test_conformance import Seeded, seed
from tests.api_fixture import ApiClient, unique

pytestmark = pytest.mark.slow

Document = dict[str, Any]
UNFUZZED_PATHS = frozenset({"/openapi.json"})
ALWAYS_ON_GET = ("as_of", "page[size]", "page[number]", "page[after]")
FILTER_OPERATIONS = ("", "[eq]", "[contains]", "[exists]", "[gte]", "[lt]")
PLACEHOLDER = "\u2603hostile\u2603"


def valid_bodies(organization_id: str, account_id: str) -> dict[tuple[str, str], Document]:
    """A valid body for each operation that takes one, that a hostile value is put into."""
    role = {
        "role_name": "Viewer",
        "entity_id": organization_id,
        "entity_type_name": "Control Planes",
        "entity_region": "us",
    }
    token = {"name": unique("token"), "expires_at": in_days(1), "auto_extend_seconds": 60}
    return {
        ("/system-accounts", "post"): {"name": unique("fuzz"), "description": "d"},
        ("/system-accounts/{accountId}", "patch"): {"description": "d"},
        ("/system-accounts/{accountId}/access-tokens", "post"): token,
        ("/system-accounts/{accountId}/access-tokens/{tokenId}", "patch"): {"name": unique("token")},
        ("/system-accounts/{accountId}/access-tokens/{tokenId}/rotate", "post"): {"grace_period_seconds": 0},
        ("/system-accounts/{accountId}/access-tokens/{tokenId}/revoke", "patch"): {"reason": "unused"},
        ("/system-accounts/{accountId}/assigned-roles", "post"): role,
        ("/teams", "post"): {"name": unique("team")},
        ("/teams/{teamId}", "patch"): {"description": "d"},
        ("/teams/{teamId}/assigned-roles", "post"): role,
        ("/teams/{teamId}/system-accounts", "post"): {"id": account_id},
        ("/tokens/introspect", "post"): {"token": "spat_nothing"},
        ("/system-accounts/{accountId}/federated-credentials", "post"): {
            "name": unique("credential"),
            "issuer": "https://ci.example",
            "subject": "repo:acme/deploy:*",
        },
        ("/system-accounts/{accountId}/federated-credentials/{credentialId}", "patch"): {"subject": "s"},
        ("/oauth/token", "post"): {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": "e30.e30.e30",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        },
    }


def _resolve(document: Document, node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = document
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part.replace("~1", "/")]
        node = target
    return node


def query_names(document: Document, method: str, operation: Document, shared: list[Document]) -> list[str]:
    names: set[str] = set(ALWAYS_ON_GET) if method == "get" else set()
    for parameter in (_resolve(document, p) for p in [*operation.get("parameters", []), *shared]):
        if parameter["in"] != "query":
            continue
        if parameter.get("style") == "deepObject":
            for field in _resolve(document, parameter["schema"]).get("properties", {}):
                keys = ("labels.env", "labels][env") if field == "labels" else (field,)
                names.update(f"{parameter['name']}[{key}]{op}" for key in keys for op in FILTER_OPERATIONS)
        else:
            names.add(parameter["name"])
    return sorted(names)


def body_fields(document: Document, operation: Document) -> list[str]:
    body = _resolve(document, operation.get("requestBody", {}))
    schema = _resolve(document, body.get("content", {}).get("application/json", {}).get("schema", {}))
    return sorted(schema.get("properties", {}))


DOCUMENT = build_document()
TARGETS = [
    (path, method, where, name)
    for path, method, operation, shared in operations(DOCUMENT)
    if path not in UNFUZZED_PATHS
    for where, names in (
        ("query", query_names(DOCUMENT, method, operation, shared)),
        ("body", body_fields(DOCUMENT, operation)),
    )
    for name in names
]

HOSTILE_TEXT = st.sampled_from(
    [
        "²",
        "٣٤",
        "1²",
        "a\x00b",
        "\x00",
        "\u200b",
        "ad\u200bmin",
        " admin ",
        "\u202eevil",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-12:00",
        "2024-02-30T00:00:00Z",
        "99999999999999999999.99999999999999999999",
        "9223372036854775808",
        "-1",
        "1" * 5000,
        "x" * 70_000,
        "%00",
        "../../etc/passwd",
        "' OR 1=1 --",
        "",
        " ",
    ]
) | st.text(max_size=50)
HOSTILE_NUMBERS = (
    st.sampled_from([2**63, 2**64 + 1, 10**15, -(2**63) - 1, 10**400, 1e15, 1e308, -0.0]) | st.integers()
)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


HOSTILE_JSON = st.one_of(
    HOSTILE_TEXT.map(lambda text: msgspec.json.encode(text).decode()),
    HOSTILE_NUMBERS.map(lambda number: msgspec.json.encode(number).decode()),
    st.sampled_from(['"\\ud800"', '"\\udfff x"', '"a\\u0000b"', "null", "true", "{}", '{"a": 1}', "[1, 2]"]),
    st.sampled_from([33, 1_000, 30_000]).map(_nested),
)
QUERY_TEXT_LIMIT = 2_000  # request lines past 8190 bytes never reach the application (aiohttp's parser)
HOSTILE_QUERY = st.one_of(
    HOSTILE_TEXT.map(lambda text: urllib.parse.quote(text[:QUERY_TEXT_LIMIT], safe="")),
    HOSTILE_NUMBERS.map(str),
    st.sampled_from(["%ED%A0%80", "%FF", "%C0%80", "a%00b", "%E2%80%8B"]),
)


OAUTH_ERRORS = frozenset({("/oauth/token", "post")})
"""Operations that answer a refusal as an RFC 6749 error object rather than a problem."""


def _path(template: str, method: str, seeded: Seeded) -> str:
    ids = seeded.path_ids(template)
    if method == "delete":  # keep the seeded resources; a hostile value must still be refused
        ids = {name: str(uuid.uuid4()) for name in ids}
    path = template
    for name, value in ids.items():
        path = path.replace("{" + name + "}", value)
    return "/v3" + path


@pytest.fixture(scope="module")
async def seeded(api: ApiClient) -> Seeded:
    return await seed(api)


@pytest.fixture(scope="module")
async def bodies(api: ApiClient, api_runtime: Runtime, seeded: Seeded) -> dict[tuple[str, str], Document]:
    return valid_bodies(api_runtime.organization.organization_id, seeded.account_id)


def test_every_body_operation_has_a_valid_body() -> None:
    documented = {(path, method) for path, method, where, _name in TARGETS if where == "body"}
    assert documented == set(valid_bodies(str(uuid.uuid4()), str(uuid.uuid4())))


@pytest.mark.parametrize("target", TARGETS, ids=["{1} {0} {2}:{3}".format(*target) for target in TARGETS])
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_hostile_values_never_get_a_5xx_and_a_refusal_writes_nothing(
    api: ApiClient,
    api_runtime: Runtime,
    seeded: Seeded,
    bodies: dict[tuple[str, str], Document],
    target: tuple[str, str, str, str],
    data: st.DataObject,
) -> None:
    template, method, where, name = target
    path = _path(template, method, seeded)
    raw: bytes | None = None
    body = bodies.get((template, method))
    if body is not None:
        fields = dict(body)
        if where == "body":
            fields[name] = PLACEHOLDER
        encoded = msgspec.json.encode(fields).decode()
        hostile = data.draw(HOSTILE_JSON, "value") if where == "body" else ""
        raw = encoded.replace(msgspec.json.encode(PLACEHOLDER).decode(), hostile).encode()
    if where == "query":
        path += f"?{urllib.parse.quote(name, safe='[]')}={data.draw(HOSTILE_QUERY, 'value')}"
    before = await log_head(api_runtime)
    reply = await api.request(method.upper(), path, raw=raw)
    assert reply.status < 500, (method, path[:300], raw and raw[:300], reply.body)
    if reply.status >= 400 and (template, method) in OAUTH_ERRORS:
        assert set(reply.body) == {"error"}, reply.body
        assert await log_head(api_runtime) == before, (method, path[:300], reply.status)
    elif reply.status >= 400:
        assert reply.content_type == PROBLEM_CONTENT_TYPE, reply.headers
        assert await log_head(api_runtime) == before, (method, path[:300], reply.status)
