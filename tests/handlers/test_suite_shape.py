"""The handler suite keeps its promises: every command the dispatcher knows has tests that send it
(a command added to ``HANDLERS`` without one fails here), and no test of the package needs a
fixture of the session's servers (PostgreSQL, Kafka, the HTTP service), so it runs alone in seconds.
And the handlers keep their shape: each loads its aggregate and appends its decision through
``services.repository``, the one place that recognises a retry and builds a command's events."""

import ast
import inspect
from pathlib import Path

import pytest

from services import repository
from services.dispatch import HANDLERS
from tests.handlers import conftest

PACKAGE = Path(__file__).parent
OWN_FIXTURES = {"world"}
"""The fixtures ``tests/handlers/conftest.py`` defines; a test may also take ``request``."""
ABOUT_THE_DOOR = {"test_dispatch.py", Path(__file__).name}
"""Modules that send every command only to show the door refuses it: they do not count as tests of
the handlers."""


def _names_called(node: ast.AST) -> set[str]:
    called = set()
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            func = call.func
            called.add(func.id if isinstance(func, ast.Name) else getattr(func, "attr", ""))
    return called


def _sent_by_tests(tree: ast.Module) -> set[str]:
    """What the module's tests call, directly or through the module's own helper functions."""
    functions = {
        node.name: _names_called(node)
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    sent: set[str] = set()
    pending = [name for name in functions if name.startswith("test_")]
    seen = set(pending)
    while pending:
        called = functions[pending.pop()]
        sent |= called
        helpers = {name for name in called if name in functions} - seen
        seen |= helpers
        pending.extend(helpers)
    return sent


def _handler_test_modules() -> list[Path]:
    return sorted(path for path in PACKAGE.glob("test_*.py") if path.name not in ABOUT_THE_DOOR)


def test_every_command_in_the_message_map_has_handler_tests() -> None:
    names = {kind.__name__ for kind in HANDLERS}
    assert len(names) == len(HANDLERS), "two commands share a name: this check cannot tell them apart"
    sent: set[str] = set()
    for path in _handler_test_modules():
        sent |= _sent_by_tests(ast.parse(path.read_text()))
    assert sorted(names - sent) == [], "commands of services.dispatch.HANDLERS no handler test sends"


def _parametrized(function: object) -> set[str]:
    names: set[str] = set()
    for mark in getattr(function, "pytestmark", []):
        if mark.name == "parametrize":
            argnames = mark.args[0]
            names |= set(argnames.split(",") if isinstance(argnames, str) else argnames)
    return {name.strip() for name in names}


def test_no_test_of_the_package_takes_a_fixture_of_the_session_servers() -> None:
    """Statically, for every test of the package (whichever ran): it takes only ``world``,
    ``request`` and its parameters, and ``world`` takes nothing."""
    assert inspect.signature(conftest.world).parameters == {}
    for path in PACKAGE.glob("test_*.py"):
        module = __import__(f"tests.handlers.{path.stem}", fromlist=["_"])
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if not name.startswith("test_") or function.__module__ != module.__name__:
                continue
            taken = set(inspect.signature(function).parameters) - _parametrized(function)
            assert taken <= OWN_FIXTURES | {"request"}, f"{path.name}::{name} takes {taken}"


def test_no_collected_handler_test_uses_a_fixture_from_outside(request: pytest.FixtureRequest) -> None:
    """Dynamically, for the tests of the package collected in this run, autouse fixtures included:
    every fixture they use is the package's own or a plugin's, none of ``tests/conftest.py`` and
    its plugins (the PostgreSQL, Kafka and HTTP service fixtures)."""
    for item in request.session.items:
        if not isinstance(item, pytest.Function) or PACKAGE not in item.path.parents:
            continue
        for name, definitions in item._fixtureinfo.name2fixturedefs.items():
            for definition in definitions:
                module = getattr(definition.func, "__module__", "")
                outside = module.startswith("tests") and not module.startswith("tests.handlers")
                assert not outside, f"{item.nodeid} uses {name} from {module}"


def test_handlers_load_and_append_their_aggregate_only_through_the_repository() -> None:
    """No module of a handler recognises a retry (``recorded``) or builds its command's events
    (``new_events``) itself: a second load-or-append helper would drift from the repository's."""
    modules = {inspect.getsourcefile(handler) for handler in HANDLERS.values()}
    assert len(modules) == 5, modules  # accounts, teams, tokens, the token exchange and the role holders
    for path in sorted(str(module) for module in modules):
        called = _names_called(ast.parse(Path(path).read_text()))
        assert not called & {"recorded", "new_events"}, f"{path} loads or appends past the repository"
    assert {"recorded", "new_events"} <= _names_called(
        ast.parse(Path(str(inspect.getsourcefile(repository))).read_text())
    )
