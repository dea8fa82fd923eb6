"""``tokenledger projections status`` and ``rebuild`` against a live database while it serves."""

from pathlib import Path

import pytest

from services.composition import Runtime
from services.projections_admin import rebuild, status
from tests.api_fixture import ApiClient, api_settings


async def test_status_then_rebuild_while_serving(
    api: ApiClient, api_runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = api_settings(api_runtime.dsn, tmp_path)
    assert await status(settings) == 0
    shown = capsys.readouterr()
    lines = shown.out.splitlines()[1:]
    legend = {line.split()[0] for line in shown.err.splitlines() if line[:1].isalpha()}
    assert legend == {"live", "position", "lag", "health"}, shown.err
    assert {line.split()[0] for line in lines} == set(api_runtime.projections.names)
    assert all(line.endswith("live") for line in lines), lines

    before = (await api.get("/v3/system-accounts?page[size]=100")).body
    assert await rebuild(settings, ["accounts"], every=False) == 0
    assert "accounts: rebuilt and switched" in capsys.readouterr().out
    assert (await api.get("/v3/system-accounts?page[size]=100")).body == before
    assert await rebuild(settings, ["nope"], every=False) == 2
