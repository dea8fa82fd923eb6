"""The one fixture of the handler suite: a fresh ``World`` (``tests.handlers.world``) per test."""

import pytest

from tests.handlers.world import World


@pytest.fixture
def world() -> World:
    return World()
