"""The CLI client against the session's real server (``tests.api_fixture``): one ``Cli`` per session,
pointed at it with ``TOKENLEDGER_URL``/``TOKENLEDGER_TOKEN`` and a config directory of its own."""

import pytest

from tests.cli.runner import Cli


@pytest.fixture(scope="session")
def cli(api_url: str, admin_token: str, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    home = tmp_path_factory.mktemp("cli-config")
    return Cli(home, TOKENLEDGER_URL=api_url, TOKENLEDGER_TOKEN=admin_token)
