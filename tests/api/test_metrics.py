"""``GET /metrics`` over real HTTP: scraped and parsed with prometheus-client's own parser after a
scripted workload, the counts match the workload; no label holds a secret, an id or a name; and
only a caller with the ``metrics:read`` right reads it, unless the deployment makes it public."""

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from services.api import state
from services.api.app import create_app
from services.composition import Runtime
from tests.api.identity_support import account_with_roles
from tests.api_fixture import ApiClient, unique

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
PROJECTIONS = ("accounts", "tokens")


async def scrape(url: str, token: str | None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics", headers=headers) as reply:
        return reply.status, await reply.text()


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scraped(url: str, token: str) -> tuple[Samples, str]:
    status, text = await scrape(url, token)
    assert status == 200, text
    return parse(text), text


async def test_the_counts_match_a_scripted_workload(api: ApiClient, api_url: str, admin_token: str) -> None:
    names = [unique("metered") for _ in range(3)]
    before, _ = await scraped(api_url, admin_token)
    created = [await api.post("/v3/system-accounts", {"name": name, "description": "d"}) for name in names]
    assert [reply.status for reply in created] == [201, 201, 201]
    duplicate = await api.post("/v3/system-accounts", {"name": names[0], "description": "d"})
    assert duplicate.status == 409
    missing = await api.get("/v3/system-accounts/00000000-0000-4000-8000-000000000000")
    assert missing.status == 404
    unrouted = await api.get(f"/v3/{names[1]}/nowhere")
    assert unrouted.status == 404
    refused = await api.get("/v3/system-accounts", token="not-a-token")
    assert refused.status == 401
    after, text = await scraped(api_url, admin_token)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = "/v3/system-accounts"
    assert delta("tokenledger_http_requests_total", route=route, method="POST", status="201") == 3
    assert delta("tokenledger_http_requests_total", route=route, method="POST", status="409") == 1
    assert delta("tokenledger_http_requests_total", route=route, method="GET", status="401") == 1
    one = "/v3/system-accounts/{accountId}"
    assert delta("tokenledger_http_requests_total", route=one, method="GET", status="404") == 1
    assert delta("tokenledger_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert delta("tokenledger_http_requests_total", route="/metrics", method="GET", status="200") == 1
    assert delta("tokenledger_http_request_duration_seconds_count", route=route, method="POST") == 4
    assert delta("tokenledger_commands_total", command="account.create", outcome="ok") == 3
    assert delta("tokenledger_commands_total", command="account.create", outcome="conflict") == 1
    assert delta("tokenledger_command_duration_seconds_count", command="account.create") == 4
    # The admin's token: three creates, the duplicate, the two 404s and the second scrape.
    assert delta("tokenledger_verifications_total", outcome="accepted", reason="none") == 7
    assert delta("tokenledger_verifications_total", outcome="rejected", reason="malformed") == 1
    assert delta("tokenledger_eventstore_append_duration_seconds_count", result="ok") >= 3
    for projection in PROJECTIONS:
        assert ("tokenledger_projection_lag_events", frozenset({("projection", projection)})) in after
    assert value(after, "tokenledger_db_pool_max_connections") > 0
    assert ("tokenledger_usage_log_buffered_rows", frozenset()) in after
    ids = [reply.body["id"] for reply in created]
    for private in [*names, *ids, admin_token]:
        assert private not in text


async def test_verifier_cache_hits_are_counted(api: ApiClient, api_url: str, admin_token: str) -> None:
    before, _ = await scraped(api_url, admin_token)
    for _ in range(3):
        assert (await api.get("/v3/system-accounts")).status == 200
    after, _ = await scraped(api_url, admin_token)
    hits = value(after, "tokenledger_verifier_cache_lookups_total", result="hit")
    assert hits - value(before, "tokenledger_verifier_cache_lookups_total", result="hit") == 4


async def test_only_the_metrics_right_reads_the_metrics(api: ApiClient, api_url: str) -> None:
    assert (await scrape(api_url, None))[0] == 401
    assert (await scrape(api_url, "spat_not-a-token"))[0] == 401
    _, viewer = await account_with_roles(api, "Viewer")
    assert (await scrape(api_url, viewer))[0] == 403
    _, metrics_reader = await account_with_roles(api, "Metrics")
    assert (await scrape(api_url, metrics_reader))[0] == 200
    _, narrowed = await account_with_roles(api, "Admin", "Metrics", scopes=["identity:read"])
    assert (await scrape(api_url, narrowed))[0] == 403
    _, scoped = await account_with_roles(api, "Admin", "Metrics", scopes=["metrics:read"])
    assert (await scrape(api_url, scoped))[0] == 200


async def test_a_metrics_reader_cannot_change_anything(api: ApiClient) -> None:
    _, metrics_reader = await account_with_roles(api, "Metrics")
    refused = await api.post("/v3/system-accounts", {"name": unique("nope")}, token=metrics_reader)
    assert refused.status == 403
    assert (await api.get("/v3/system-accounts", token=metrics_reader)).status == 403


@pytest.fixture
async def public_url(api_runtime: Runtime) -> AsyncIterator[str]:
    app = create_app(metrics_public=True)
    state.bind(app, api_runtime)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


async def test_public_metrics_need_no_token(public_url: str) -> None:
    status, text = await scrape(public_url, None)
    assert status == 200
    assert "tokenledger_http_requests_total" in text  # the rest of the API still needs a token:
    async with aiohttp.ClientSession() as session, session.get(f"{public_url}/v3/system-accounts") as reply:
        assert reply.status == 401
