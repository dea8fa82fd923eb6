"""Pytest plugin: the whole service over real HTTP, once per session.

``api_runtime`` opens the production composition root (``open_runtime``) on a database of its own
cloned from the migrated template, with the projection runners running; ``api_url`` serves
``create_app`` on a real loopback port; ``admin_token`` is a token from ``tokenledger bootstrap``'s
code path; ``api`` is a small JSON client (``await api.post(path, body, token=...)`` returns
``Reply(status, body, headers)``). Tests share the database, so each makes its own names
(``unique("name")``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestServer

from services.api import state
from services.api.access_log import PathOnlyAccessLogger
from services.api.app import create_app
from services.bootstrap_admin import bootstrap
from services.composition import Runtime, open_runtime
from services.config import Settings, load_settings

TEST_PEPPER = "test-pepper-0123456789abcdefghijklmnopqrstuvwxyz"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def tampered(secret: str) -> str:
    """The secret with its last character changed (never to itself: a fixed letter was, one time in 62)."""
    return secret[:-1] + ("A" if secret[-1] != "A" else "B")


def api_settings(database_url: str, data_dir: Path, **environment: str) -> Settings:
    return load_settings(
        {
            "DATABASE_URL": database_url,
            "TOKENLEDGER_DATA_DIR": str(data_dir),
            "TOKENLEDGER_PEPPER": TEST_PEPPER,
            "TOKENLEDGER_WORKERS": "projector",
            **environment,
        }
    )


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    headers: Mapping[str, str]

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0]


class ApiClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str) -> None:
        self._session = session
        self.base_url = base_url
        self.token = token

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Reply:
        sent = {"Authorization": f"Bearer {token or self.token}"} if token != "" else {}
        if body is not None or raw is not None:
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        data = raw if raw is not None else (msgspec.json.encode(body) if body is not None else None)
        async with self._session.request(method, self.base_url + path, data=data, headers=sent) as response:
            content = await response.read()
            decoded = msgspec.json.decode(content) if content else None
            return Reply(response.status, decoded, response.headers)

    async def get(self, path: str, **options: Any) -> Reply:
        return await self.request("GET", path, **options)

    async def post(self, path: str, body: Any = None, **options: Any) -> Reply:
        return await self.request("POST", path, body, **options)

    async def patch(self, path: str, body: Any = None, **options: Any) -> Reply:
        return await self.request("PATCH", path, body, **options)

    async def delete(self, path: str, **options: Any) -> Reply:
        return await self.request("DELETE", path, **options)


@pytest.fixture(scope="session")
async def api_database(postgres_server_dsn: str, template_dsn: str) -> str:
    from tests.conftest import _create_database

    template = template_dsn.split("?")[0].rsplit("/", 1)[1]
    return await _create_database(postgres_server_dsn, f"tl_api_{uuid.uuid4().hex[:10]}", template)


@pytest.fixture(scope="session")
async def api_runtime(api_database: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Runtime]:
    settings = api_settings(api_database, tmp_path_factory.mktemp("api-data"))
    async with open_runtime(settings) as runtime:
        await runtime.until_read_models_current()
        yield runtime


@pytest.fixture(scope="session")
async def api_url(api_runtime: Runtime) -> AsyncIterator[str]:
    app = create_app()
    state.bind(app, api_runtime)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(access_log_class=PathOnlyAccessLogger)
    yield str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture(scope="session")
async def admin_token(api_runtime: Runtime) -> str:
    return await bootstrap(api_runtime.deps, api_runtime.dispatcher, "test-admin", api_runtime.clock())


@pytest.fixture(scope="session")
async def api(api_url: str, admin_token: str) -> AsyncIterator[ApiClient]:
    async with aiohttp.ClientSession() as session:
        yield ApiClient(session, api_url, admin_token)
