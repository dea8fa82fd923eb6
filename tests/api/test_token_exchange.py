"""The OIDC token exchange (POST /v3/oauth/token) end to end, against a real local issuer over
HTTPS (tests/oidc_issuer.py): GitHub-Actions-shaped (RSA) and Kubernetes-shaped (EC) id-tokens
exchanged for short-lived tokens that work on the API, with their provenance in token.issued; key
rotation; and every refusal an RFC 6749 error that appends nothing and is recorded, with its precise
reason, in the usage log."""

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp.test_utils import TestServer

from events.tokens import TokenIssued
from services.api import state
from services.api.app import create_app
from services.api.rate_limit import RateLimit
from services.api.routes import oauth
from services.composition import Runtime
from services.config import ConfigError, load_settings
from services.federation import glob_match
from services.oidc.keys import IssuerKeys
from services.oidc.replays import CLOCK_SKEW, ReplayClaimsHousekeeping
from services.oidc.verification import DEFAULT_MAX_AGE, LEEWAY_SECONDS, IdTokenRefused, verify
from services.tokens.exchange import JTI_CLAIMS, jti_claim, lapsed_jti_claims_bound
from tests.api.identity_support import create_account, grant_identity_role, nothing_written
from tests.api_fixture import ApiClient
from tests.oidc_issuer import LocalIssuer, github_claims, kubernetes_claims

AUDIENCE = "urn:tokenledger:local"
GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"


@pytest.fixture(scope="module")
async def issuer(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalIssuer]:
    local = LocalIssuer(Path(tmp_path_factory.mktemp("issuer")))
    await local.start()
    yield local
    await local.close()


@pytest.fixture(scope="module")
async def exchange_url(api_runtime: Runtime, issuer: LocalIssuer) -> AsyncIterator[str]:
    """The API with the exchange's key cache trusting the local issuer's certificate; unknown key
    ids refetched at once (the 30 s limit has its own test)."""
    app = create_app()
    state.bind(app, api_runtime)
    keys = IssuerKeys(ssl_context=issuer.client_ssl, refetch_interval=0.0)
    app[state.OIDC_KEYS].value = keys
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()
    await keys.close()


async def _exchange(url: str, token: str, **fields: str) -> tuple[int, dict[str, Any]]:
    form = {"grant_type": GRANT, "subject_token": token, "subject_token_type": JWT_TYPE, **fields}
    async with aiohttp.ClientSession() as session, session.post(f"{url}/v3/oauth/token", data=form) as reply:
        assert reply.headers.get("Cache-Control") == "no-store"
        return reply.status, await reply.json()


async def _trusting(api: ApiClient, issuer: LocalIssuer, **credential: Any) -> str:
    """A new account holding Viewer, with a federated credential trusting ``issuer``."""
    account = await create_account(api, "federated")
    await grant_identity_role(api, f"/v3/system-accounts/{account['id']}", "Viewer")
    body = {"name": "ci", "issuer": issuer.url, "subject": "repo:acme/deploy:*", **credential}
    reply = await api.post(f"/v3/system-accounts/{account['id']}/federated-credentials", body)
    assert reply.status == 201, reply.body
    account_id: str = account["id"]
    return account_id


def _github_credential(owner_id: str = "4242") -> dict[str, Any]:
    return {
        "conditions": [
            {"claim": "repository_owner_id", "operator": "equals", "values": [owner_id]},
            {"claim": "environment", "operator": "one_of", "values": ["production", "staging"]},
        ],
        "required_claims": ["repository_owner_id"],
    }


async def _issued(runtime: Runtime, token_id: str) -> TokenIssued:
    (first, *_rest) = await runtime.store.read_stream(f"token-{token_id}")
    assert isinstance(first.event, TokenIssued)
    return first.event


async def test_a_github_actions_id_token_is_exchanged_for_a_working_short_lived_token(
    api: ApiClient, api_runtime: Runtime, issuer: LocalIssuer, exchange_url: str
) -> None:
    owner = str(uuid.uuid4().int)[:8]
    account_id = await _trusting(api, issuer, **_github_credential(owner))
    id_token = issuer.mint(github_claims(AUDIENCE, owner_id=owner))
    status, body = await _exchange(exchange_url, id_token, requested_lifetime="600")
    assert status == 200, body
    assert body["token_type"] == "Bearer"
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert 590 <= body["expires_in"] <= 600
    secret = body["access_token"]
    assert secret.startswith("spat_")
    assert (await api.get(f"/v3/system-accounts/{account_id}", token=secret)).status == 200
    introspected = await api.post("/v3/tokens/introspect", {"token": secret})
    assert introspected.body["active"] is True
    token_id = introspected.body["token_id"]
    issued = await _issued(api_runtime, token_id)
    assert issued.federated is not None
    assert issued.federated.issuer == issuer.url
    assert issued.federated.subject == "repo:acme/deploy:ref:refs/heads/main"
    assert issued.federated.claims["workflow_ref"].endswith("deploy.yml@refs/heads/main")
    assert issued.federated.claims["run_id"] == "987654321"
    assert issued.auto_extend_seconds is None
    credential_id = issued.federated.credential_id
    listed = await api.get(
        f"/v3/system-accounts/{account_id}/federated-credentials/{credential_id}/access-tokens"
    )
    assert [t["id"] for t in listed.body["data"]] == [token_id]
    rotated = await api.post(f"/v3/system-accounts/{account_id}/access-tokens/{token_id}/rotate", {})
    assert rotated.status == 409, rotated.body
    async with nothing_written(api_runtime):
        assert await _exchange(exchange_url, id_token) == (400, {"error": "invalid_grant"})


async def test_a_kubernetes_token_signed_with_an_ec_key_and_nested_claims(
    api: ApiClient, issuer: LocalIssuer, exchange_url: str
) -> None:
    namespace = f"ns-{uuid.uuid4().hex[:8]}"
    condition = {"claim": "kubernetes.io.namespace", "operator": "equals", "values": [namespace]}
    await _trusting(api, issuer, subject=f"system:serviceaccount:{namespace}:*", conditions=[condition])
    status, body = await _exchange(
        exchange_url, issuer.mint(kubernetes_claims(AUDIENCE, namespace), kind="ec")
    )
    assert status == 200, body
    assert body["expires_in"] <= 3600
    scoped = issuer.mint(kubernetes_claims(AUDIENCE, namespace), kind="ec")
    status, body = await _exchange(exchange_url, scoped, scope="accounts:read")
    assert status == 200 and body["scope"] == "accounts:read", body


async def test_after_a_key_rotation_new_keys_work_and_old_ones_do_not(
    api: ApiClient, api_runtime: Runtime, issuer: LocalIssuer, exchange_url: str
) -> None:
    owner = str(uuid.uuid4().int)[:8]
    await _trusting(api, issuer, **_github_credential(owner))
    old = issuer.mint(github_claims(AUDIENCE, owner_id=owner))
    issuer.rotate()
    new = issuer.mint(github_claims(AUDIENCE, owner_id=owner))
    assert (await _exchange(exchange_url, new))[0] == 200
    async with nothing_written(api_runtime):
        assert await _exchange(exchange_url, old) == (400, {"error": "invalid_grant"})


def _segment(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _handmade(header: dict[str, Any], claims: dict[str, Any], key: bytes | None) -> str:
    """A JWS built by hand (PyJWT refuses to make these two): unsigned, or HMAC-SHA256 under ``key``."""
    signing_input = f"{_segment(json.dumps(header).encode())}.{_segment(json.dumps(claims).encode())}"
    signature = b"" if key is None else hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_segment(signature)}"


def _with_kid(issuer: LocalIssuer, claims: dict[str, Any], kid: str) -> str:
    now = int(time.time())
    body = {"iss": issuer.url, "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex, **claims}
    return jwt.encode(body, issuer.keys[issuer.kid("rsa")], algorithm="RS256", headers={"kid": kid})


def _refusals(issuer: LocalIssuer, owner: str) -> dict[str, str]:
    now = int(time.time())
    good = github_claims(AUDIENCE, owner_id=owner)
    rsa_kid = issuer.kid("rsa")
    full = {**good, "iss": issuer.url, "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}
    return {
        "wrong issuer": issuer.mint({**good, "iss": "https://elsewhere.example"}),
        "wrong audience": issuer.mint({**good, "aud": "urn:someone-else"}),
        "expired": issuer.mint({**good, "iat": now - 900, "nbf": now - 900, "exp": now - 300}),
        "nbf in the future": issuer.mint({**good, "nbf": now + 600}),
        "iat in the future": issuer.mint({**good, "iat": now + 600, "exp": now + 900}),
        "iat too old": issuer.mint({**good, "iat": now - 7200, "nbf": now - 7200, "exp": now + 60}),
        "iat too old, lifetime over the cap": issuer.mint({**good, "iat": now - 2 * 86400, "exp": now + 60}),
        "lifetime over the cap": issuer.mint({**good, "iat": now - 10, "exp": now + 2 * 86400}),
        "alg none": _handmade({"alg": "none", "kid": rsa_kid}, full, None),
        "HS256 signed with the public key": _handmade(
            {"alg": "HS256", "kid": rsa_kid}, full, issuer.public_pem(rsa_kid)
        ),
        "unknown kid": _with_kid(issuer, good, "nope"),
        "subject mismatch": issuer.mint({**good, "sub": "repo:evil/deploy:ref:refs/heads/main"}),
        "condition false": issuer.mint({**good, "environment": "dev"}),
        "missing required claim": issuer.mint({**good, "repository_owner_id": None}),
        "no jti": issuer.mint({**good, "jti": None}),
        "garbage": "not.a.jwt",
    }


async def test_every_refusal_is_invalid_grant_and_appends_nothing(
    api: ApiClient, api_runtime: Runtime, issuer: LocalIssuer, exchange_url: str
) -> None:
    owner = str(uuid.uuid4().int)[:8]
    await _trusting(api, issuer, **_github_credential(owner))
    for case, token in _refusals(issuer, owner).items():
        async with nothing_written(api_runtime):
            assert await _exchange(exchange_url, token) == (400, {"error": "invalid_grant"}), case
    oversized = issuer.mint({**github_claims(AUDIENCE, owner_id=owner), "padding": "x" * 20000})
    async with nothing_written(api_runtime):
        assert await _exchange(exchange_url, oversized) == (400, {"error": "invalid_request"})


async def test_bad_requests_are_refused_in_rfc_6749_form(
    api: ApiClient, api_runtime: Runtime, issuer: LocalIssuer, exchange_url: str
) -> None:
    owner = str(uuid.uuid4().int)[:8]
    await _trusting(api, issuer, **_github_credential(owner))
    token = issuer.mint(github_claims(AUDIENCE, owner_id=owner))
    async with nothing_written(api_runtime):
        assert await _exchange(exchange_url, token, grant_type="password") == (
            400,
            {"error": "unsupported_grant_type"},
        )
        assert await _exchange(exchange_url, token, subject_token_type="x") == (
            400,
            {"error": "invalid_request"},
        )
        assert await _exchange(exchange_url, token, requested_lifetime="7200") == (
            400,
            {"error": "invalid_request"},
        )
        assert await _exchange(exchange_url, token, audience="not-an-id") == (
            400,
            {"error": "invalid_target"},
        )
        assert await _exchange(exchange_url, token, audience=str(uuid.uuid4())) == (
            400,
            {"error": "invalid_target"},
        )
        assert await _exchange(exchange_url, token, scope="audit:read") == (400, {"error": "invalid_scope"})
    assert (await _exchange(exchange_url, token))[0] == 200


async def test_unknown_key_ids_refetch_the_key_set_at_most_every_interval(issuer: LocalIssuer) -> None:
    now = [1000.0]
    keys = IssuerKeys(ssl_context=issuer.client_ssl, refetch_interval=30.0, clock=lambda: now[0])
    try:
        assert await keys.key(issuer.url, issuer.kid("rsa")) is not None
        fetched = issuer.jwks_fetches
        for _ in range(20):
            assert await keys.key(issuer.url, f"made-up-{uuid.uuid4()}") is None
        assert issuer.jwks_fetches == fetched
        now[0] += 31
        for _ in range(20):
            assert await keys.key(issuer.url, f"made-up-{uuid.uuid4()}") is None
        assert issuer.jwks_fetches == fetched + 1
    finally:
        await keys.close()


async def test_an_id_token_older_than_the_maximum_age_is_refused_with_the_leeway(issuer: LocalIssuer) -> None:
    keys = IssuerKeys(ssl_context=issuer.client_ssl)
    now = datetime.now(UTC)
    max_age = timedelta(minutes=10)

    def issued(seconds_ago: int) -> str:
        at = int(now.timestamp()) - seconds_ago
        return issuer.mint({"aud": AUDIENCE, "sub": "s", "iat": at, "nbf": at, "exp": at + 4 * 3600})

    try:
        for seconds_ago in (0, 600, 600 + LEEWAY_SECONDS - 5):
            verified = await verify(issued(seconds_ago), issuer.url, [AUDIENCE], keys, now, max_age=max_age)
            assert verified.claims["sub"] == "s", seconds_ago
        with pytest.raises(IdTokenRefused, match="issued_too_long_ago"):
            await verify(issued(600 + LEEWAY_SECONDS + 5), issuer.url, [AUDIENCE], keys, now, max_age=max_age)
        old = issued(2 * 3600)
        with pytest.raises(IdTokenRefused, match="issued_too_long_ago"):
            await verify(old, issuer.url, [AUDIENCE], keys, now)
        assert await verify(old, issuer.url, [AUDIENCE], keys, now, max_age=timedelta(hours=3))
    finally:
        await keys.close()


def test_the_maximum_id_token_age_defaults_to_an_hour_and_is_bounded() -> None:
    assert load_settings({}).max_id_token_age == timedelta(hours=1) == DEFAULT_MAX_AGE
    setting = "TOKENLEDGER_MAX_ID_TOKEN_AGE_SECONDS"
    assert load_settings({setting: "600"}).max_id_token_age == timedelta(minutes=10)
    for bad in ("59", "86401", "soon", "-1"):
        with pytest.raises(ConfigError, match=setting):
            load_settings({setting: bad})


def test_the_replay_claim_is_bounded_whatever_the_jti_and_sorts_by_the_id_tokens_expiry() -> None:
    at = datetime(2026, 12, 2, tzinfo=UTC)
    assert len(jti_claim("https://issuer.example", "j" * 255, at)) == len(jti_claim("https://i", "j", at))
    later = jti_claim("https://i", "j", at + timedelta(seconds=1))
    assert jti_claim("https://i", "j", at) < lapsed_jti_claims_bound(at + timedelta(seconds=1)) <= later


async def _replay_claims(runtime: Runtime) -> dict[str, str]:
    return await runtime.store.claims_with_prefix(JTI_CLAIMS)


async def test_replay_claims_are_released_once_their_id_tokens_expired_and_not_before(
    api: ApiClient, api_runtime: Runtime, issuer: LocalIssuer, exchange_url: str
) -> None:
    owner = str(uuid.uuid4().int)[:8]
    await _trusting(api, issuer, **_github_credential(owner))
    now = int(time.time())
    expiries = {uuid.uuid4().hex: now + 120 for _ in range(3)} | {uuid.uuid4().hex: now + 3000}
    minted = {
        jti: issuer.mint({**github_claims(AUDIENCE, owner_id=owner), "jti": jti, "exp": exp})
        for jti, exp in expiries.items()
    }
    for id_token in minted.values():
        assert (await _exchange(exchange_url, id_token))[0] == 200
    keys = {
        jti_claim(issuer.url, jti, datetime.fromtimestamp(exp, UTC)): jti for jti, exp in expiries.items()
    }

    async def held() -> set[str]:
        """The jti of the test's id-tokens whose claim is still held."""
        return {keys[key] for key in await api_runtime.store.claims_with_prefix(JTI_CLAIMS) if key in keys}

    def housekeeping_at(seconds: float) -> ReplayClaimsHousekeeping:
        return ReplayClaimsHousekeeping(
            api_runtime.pool, clock=lambda: datetime.fromtimestamp(now + seconds, UTC)
        )

    assert await held() == set(expiries)
    await housekeeping_at(0).release_lapsed()
    assert await held() == set(expiries)
    async with nothing_written(api_runtime):
        for id_token in minted.values():
            assert await _exchange(exchange_url, id_token) == (400, {"error": "invalid_grant"})
    kept_for = LEEWAY_SECONDS + CLOCK_SKEW.total_seconds()
    await housekeeping_at(120 + kept_for - 1).release_lapsed()
    assert await held() == set(expiries)
    await housekeeping_at(120 + kept_for + 1).release_lapsed()
    assert await held() == {jti for jti, exp in expiries.items() if exp == now + 3000}
    await housekeeping_at(3000 + kept_for + 1).release_lapsed()
    assert await held() == set()


async def _exchange_as(url: str, agent: str, token: str, **fields: str) -> tuple[int, dict[str, Any]]:
    form = {"grant_type": GRANT, "subject_token": token, "subject_token_type": JWT_TYPE, **fields}
    async with (
        aiohttp.ClientSession(headers={"User-Agent": agent}) as session,
        session.post(f"{url}/v3/oauth/token", data=form) as reply,
    ):
        return reply.status, await reply.json()


async def _exchange_rows(runtime: Runtime, agent: str) -> list[dict[str, Any]]:
    assert await runtime.usage.flush()
    rows = await runtime.pool.fetch(
        "SELECT outcome, reason, operation, token_id, account_id::text, federated_credential_id::text,"
        " issuer, presented_hash, client_address FROM usage_log WHERE user_agent = $1 ORDER BY position",
        agent,
    )
    return [dict(row) for row in rows]


REFUSAL_REASONS = {
    "wrong issuer": "no_credential_trusts_the_issuer",
    "wrong audience": "wrong_audience",
    "expired": "expired",
    "nbf in the future": "not_yet_valid",
    "iat in the future": "not_yet_valid",
    "iat too old": "issued_too_long_ago",
    "iat too old, lifetime over the cap": "lifetime_over_cap",
    "lifetime over the cap": "lifetime_over_cap",
    "alg none": "algorithm_refused",
    "HS256 signed with the public key": "algorithm_refused",
    "unknown kid": "unknown_key",
    "subject mismatch": "subject_mismatch",
    "condition false": "condition_false",
    "missing required claim": "missing_required_claim",
    "no jti": "missing_claim",
    "garbage": "malformed",
}
"""The precise reason the usage log records for each of ``_refusals``: the client never sees it."""


async def test_every_refusal_is_in_the_usage_log_with_its_precise_reason(
    api: ApiClient, api_runtime: Runtime, issuer: LocalIssuer, exchange_url: str
) -> None:
    owner = str(uuid.uuid4().int)[:8]
    account_id = await _trusting(api, issuer, **_github_credential(owner))
    listed = await api.get(f"/v3/system-accounts/{account_id}/federated-credentials")
    [credential_id] = [c["id"] for c in listed.body["data"]]
    run = uuid.uuid4().hex
    refusals = _refusals(issuer, owner)
    assert set(refusals) == set(REFUSAL_REASONS)
    for case, token in refusals.items():
        agent = f"refusal {run} {case}"
        async with nothing_written(api_runtime):
            status, body = await _exchange_as(exchange_url, agent, token, audience=account_id)
        assert status == 400 and list(body) == ["error"], case
        [row] = await _exchange_rows(api_runtime, agent)
        assert (row["outcome"], row["reason"], row["operation"]) == (
            "rejected",
            REFUSAL_REASONS[case],
            "token_exchange",
        ), case
        assert row["token_id"] is None and len(row["presented_hash"]) == 32, case
        assert row["presented_hash"] == api_runtime.usage.log.hash_of(token), case  # type: ignore[union-attr]
        assert row["client_address"] == "127.0.0.1", case
        if case == "garbage":
            assert (row["issuer"], row["account_id"], row["federated_credential_id"]) == (None, None, None)
        elif case == "wrong issuer":
            assert (row["issuer"], row["federated_credential_id"]) == ("https://elsewhere.example", None)
        else:
            assert (row["issuer"], row["account_id"], row["federated_credential_id"]) == (
                issuer.url,
                account_id,
                credential_id,
            ), case


async def test_replays_oversized_tokens_and_bad_requests_are_in_the_usage_log(
    api: ApiClient, api_runtime: Runtime, issuer: LocalIssuer, exchange_url: str
) -> None:
    owner = str(uuid.uuid4().int)[:8]
    account_id = await _trusting(api, issuer, **_github_credential(owner))
    id_token = issuer.mint(github_claims(AUDIENCE, owner_id=owner))
    agent = f"replay {uuid.uuid4().hex}"
    assert (await _exchange_as(exchange_url, agent, id_token, audience=account_id))[0] == 200
    oversized = issuer.mint({**github_claims(AUDIENCE, owner_id=owner), "padding": "x" * 20000})
    async with nothing_written(api_runtime):
        assert await _exchange_as(exchange_url, agent, id_token, audience=account_id) == (
            400,
            {"error": "invalid_grant"},
        )
        assert await _exchange_as(exchange_url, agent, oversized) == (400, {"error": "invalid_request"})
        assert await _exchange_as(exchange_url, agent, id_token, grant_type="password") == (
            400,
            {"error": "unsupported_grant_type"},
        )
    rows = await _exchange_rows(api_runtime, agent)
    assert [row["outcome"] for row in rows] == ["rejected"] * 3
    assert rows[0]["reason"] == "replayed_jti"
    assert rows[1]["reason"].endswith("Invalid parameters: subject_token")  # the id-token over its bound
    assert rows[2]["reason"] == "grant_type"
    assert rows[0]["account_id"] == account_id and rows[0]["issuer"] == issuer.url
    assert rows[0]["federated_credential_id"] is not None


async def test_federated_tokens_are_listed_apart_and_name_their_credential(
    api: ApiClient, api_runtime: Runtime, issuer: LocalIssuer, exchange_url: str
) -> None:
    owner = str(uuid.uuid4().int)[:8]
    account_id = await _trusting(api, issuer, **_github_credential(owner))
    listed = await api.get(f"/v3/system-accounts/{account_id}/federated-credentials")
    [credential_id] = [c["id"] for c in listed.body["data"]]
    tokens = f"/v3/system-accounts/{account_id}/access-tokens"
    long_lived = await api.post(tokens, {"name": "deploy-key", "ttl_seconds": 3600})
    assert long_lived.status == 201, long_lived.body
    assert long_lived.body["federated_credential_id"] is None
    status, body = await _exchange(exchange_url, issuer.mint(github_claims(AUDIENCE, owner_id=owner)))
    assert status == 200, body
    federated_id = (await api.post("/v3/tokens/introspect", {"token": body["access_token"]})).body["token_id"]

    everything = await api.get(tokens)
    assert {t["id"]: t["federated_credential_id"] for t in everything.body["data"]} == {
        long_lived.body["id"]: None,
        federated_id: credential_id,
    }
    only_federated = await api.get(f"{tokens}?filter[federated]=true")
    assert [t["id"] for t in only_federated.body["data"]] == [federated_id]
    assert only_federated.body["meta"]["page"]["total"] == 1
    only_long_lived = await api.get(f"{tokens}?filter[federated]=false&filter[name][eq]=deploy-key")
    assert [t["id"] for t in only_long_lived.body["data"]] == [long_lived.body["id"]]
    one = await api.get(f"{tokens}/{federated_id}")
    assert one.body["federated_credential_id"] == credential_id
    async with nothing_written(api_runtime):
        refused = await api.get(f"{tokens}?filter[federated]=maybe")
    assert refused.status == 400, refused.body
    assert "filter[federated]" in str(refused.body)


async def test_a_refusal_names_the_account_its_id_token_was_meant_for_among_several(
    api: ApiClient, api_runtime: Runtime, issuer: LocalIssuer, exchange_url: str
) -> None:
    """Several accounts trust the issuer and no ``audience`` parameter names one: the usage log row
    names the account (and credential) the id-token's audience, then its subject, single out, the
    account alone when its credentials are several, and none when several accounts remain."""
    run = uuid.uuid4().hex[:8]
    mine, shared = f"urn:mine:{run}", f"urn:shared:{run}"
    subject = f"repo:{run}/deploy:*"
    production = [{"claim": "environment", "operator": "equals", "values": ["production"]}]
    first = await _trusting(api, issuer, audiences=[mine, shared], subject=subject, conditions=production)
    await _trusting(api, issuer, audiences=[shared], subject=subject, conditions=production)
    listed = await api.get(f"/v3/system-accounts/{first}/federated-credentials")
    [first_credential] = [c["id"] for c in listed.body["data"]]
    now = int(time.time())

    def minted(audience: str, **claims: Any) -> str:
        return issuer.mint({**github_claims(audience, repository=f"{run}/deploy"), **claims})

    cases = {
        "condition false, for one account": (minted(mine, environment="dev"), "condition_false"),
        "expired, for one account": (minted(mine, iat=now - 900, nbf=now - 900, exp=now - 300), "expired"),
        "condition false, for two accounts": (minted(shared, environment="dev"), "condition_false"),
    }
    named = {}
    for case, (token, reason) in cases.items():
        agent = f"several {run} {case}"
        async with nothing_written(api_runtime):
            assert await _exchange_as(exchange_url, agent, token) == (400, {"error": "invalid_grant"}), case
        [row] = await _exchange_rows(api_runtime, agent)
        assert (row["reason"], row["issuer"]) == (reason, issuer.url), case
        named[case] = (row["account_id"], row["federated_credential_id"])
    assert named == {
        "condition false, for one account": (first, first_credential),
        "expired, for one account": (first, first_credential),
        "condition false, for two accounts": (None, None),
    }

    other = {"name": "ci-staging", "issuer": issuer.url, "subject": subject, "audiences": [mine]}
    other["conditions"] = [{"claim": "environment", "operator": "equals", "values": ["staging"]}]
    assert (await api.post(f"/v3/system-accounts/{first}/federated-credentials", other)).status == 201
    agent = f"several {run} two credentials of one account"
    assert await _exchange_as(exchange_url, agent, minted(mine, environment="dev")) == (
        400,
        {"error": "invalid_grant"},
    )
    [row] = await _exchange_rows(api_runtime, agent)
    assert (row["reason"], row["account_id"], row["federated_credential_id"]) == (
        "condition_false",
        first,
        None,
    )


async def test_the_exchange_is_rate_limited_per_client_address_and_says_so_in_the_usage_log(
    api_runtime: Runtime, issuer: LocalIssuer
) -> None:
    app = create_app()
    state.bind(app, api_runtime)
    app[oauth.LIMIT] = RateLimit(0.01, 3)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    agent = f"flood {uuid.uuid4().hex}"
    try:
        url = str(server.make_url("")).rstrip("/")
        form = {"grant_type": GRANT, "subject_token": "not.a.jwt", "subject_token_type": JWT_TYPE}
        statuses = []
        async with (
            nothing_written(api_runtime),
            aiohttp.ClientSession(headers={"User-Agent": agent}) as session,
        ):
            for _ in range(5):
                async with session.post(f"{url}/v3/oauth/token", data=form) as reply:
                    statuses.append((reply.status, await reply.json(), reply.headers.get("Retry-After")))
    finally:
        await server.close()
    refused = (429, {"error": "temporarily_unavailable"}, "1")
    assert statuses == [(400, {"error": "invalid_grant"}, None)] * 3 + [refused] * 2
    rows = await _exchange_rows(api_runtime, agent)
    assert [row["reason"] for row in rows] == ["malformed"] * 3 + ["rate_limited"] * 2


SUBJECT_GLOBS = ["repo:a/b:*", "repo:a_b:*", "100%", "a\\b*", "?x*", "*", "a*b?c", "exact", "%_\\"]
SUBJECTS = [
    "repo:a/b:ref",
    "repo:aXb:ref",
    "repo:a_b:x",
    "100%",
    "1000",
    "a\\bc",
    "abc",
    "zx",
    "x",
    "a1b2c",
    "%_\\",
]


async def test_the_candidates_query_matches_subjects_as_the_glob_does(api_runtime: Runtime) -> None:
    query = f"SELECT $1::text LIKE {oauth._SUBJECT_AS_LIKE} FROM (SELECT $2::text AS subject) AS s"
    for pattern in SUBJECT_GLOBS:
        for subject in SUBJECTS:
            matched = await api_runtime.pool.fetchval(query, subject, pattern)
            assert matched == glob_match(pattern, subject), (pattern, subject)


async def test_the_account_a_token_is_for_is_found_among_more_than_the_candidates_read(
    api: ApiClient, issuer: LocalIssuer, exchange_url: str
) -> None:
    """More credentials trust the issuer than one exchange reads (GitHub's issuer, trusted by many
    accounts): those the token's audience and subject fit are read first."""
    for _ in range(oauth.MAX_CANDIDATES // 16 + 1):
        decoy = await create_account(api, "decoy")
        for n in range(16):
            body = {"name": f"other-{n}", "issuer": issuer.url, "subject": f"repo:elsewhere/{n}:*"}
            reply = await api.post(f"/v3/system-accounts/{decoy['id']}/federated-credentials", body)
            assert reply.status == 201, reply.body
    owner = str(uuid.uuid4().int)[:8]
    await _trusting(api, issuer, **_github_credential(owner))
    status, body = await _exchange(exchange_url, issuer.mint(github_claims(AUDIENCE, owner_id=owner)))
    assert status == 200, body
