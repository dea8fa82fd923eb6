"""A log written by the released version loads and rebuilds identically: the fixture log
(``tests/fixtures/release_log``, see ``tests.integration.release_log``) is imported into an empty
database with ``tokenledger audit import``, every read model is built and rebuilt from it, and the
canonical dump equals the one the release produced, byte for byte, but for the changes this version
makes on purpose (``tests.integration.release_changes``, each listed there)."""

from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from events.registry import registered_tags
from services.audit.export import ExportedEvent
from tests.integration.release_changes import CHANGES, Tables, read_now
from tests.integration.release_log import EVERY_EVENT_TYPE, LOG, READ_MODELS, rebuilt_dump

pytestmark = pytest.mark.slow


def test_the_fixture_log_holds_every_event_type_of_the_release() -> None:
    lines = [msgspec.json.decode(line, type=ExportedEvent) for line in LOG.read_bytes().splitlines()]
    assert {line.type for line in lines} == EVERY_EVENT_TYPE
    assert set(registered_tags()) >= EVERY_EVENT_TYPE
    assert LOG.stat().st_size + READ_MODELS.stat().st_size < 200_000


async def test_the_release_log_rebuilds_the_release_read_models(empty_database: str, tmp_path: Path) -> None:
    assert await rebuilt_dump(empty_database, LOG, tmp_path) == read_now(READ_MODELS.read_bytes(), LOG)


@pytest.mark.parametrize("change", CHANGES, ids=lambda change: change.__name__)
def test_each_listed_change_changes_the_release_read_models(change: Callable[[Tables, Path], None]) -> None:
    release = READ_MODELS.read_bytes()
    assert read_now(release, LOG, [change]) != read_now(release, LOG, [])
