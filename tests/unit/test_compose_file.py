"""docker-compose.yml is a valid Compose file and wires the services the way the code expects.

Two layers: validation against the official Compose Specification JSON schema (as vendored by the
``check-jsonschema`` package; skipped if that package is missing), and structural facts checked
against the code itself: each command parses with ``tokenledger``'s own command line (click), each
environment variable is one ``services.config`` reads, every ``depends_on`` target exists and has
what its condition needs.
"""

from __future__ import annotations

import base64
import importlib.resources
import inspect
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from services import config
from services.cli import tokenledger

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
APP_SERVICES = ("migrate", "api", "projector", "scheduler", "relay")
LONG_RUNNING = ("api", "projector", "scheduler", "relay")
ALL_SERVICES = {"postgres", "kafka", *APP_SERVICES}


def parse(command: list[str]) -> tuple[str, dict[str, Any]]:
    """The (sub)command ``tokenledger <command>`` names and the parameters it would run with."""
    chosen: click.Command = tokenledger
    rest, name = list(command), "tokenledger"
    while isinstance(chosen, click.Group):
        name = rest.pop(0)
        found = chosen.get_command(click.Context(chosen), name)
        if found is None:
            raise click.UsageError(f"no such command {name!r}")
        chosen = found
    return name, chosen.make_context(name, rest).params


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    # PyYAML resolves the anchors and `<<` merge keys exactly as Compose does.
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def test_valid_against_the_compose_specification_schema(compose: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    pytest.importorskip("check_jsonschema", reason="check-jsonschema vendors the compose-spec schema")
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((vendor / "compose-spec.json").read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(validator_class(schema).iter_errors(compose), key=lambda error: list(error.path))
    assert not errors, "\n".join(f"{list(error.path)}: {error.message}" for error in errors)


def test_the_expected_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == ALL_SERVICES


def test_postgres(services: dict[str, dict[str, Any]]) -> None:
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:17")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert any(volume.endswith(":/var/lib/postgresql/data") for volume in postgres["volumes"])


def _kafka_env(services: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {key: str(value) for key, value in services["kafka"]["environment"].items()}


def _pairs(value: str, separator: str) -> dict[str, str]:
    """``a<sep>b,c<sep>d`` -> {a: b, c: d}."""
    result: dict[str, str] = {}
    for item in value.split(","):
        key, _, rest = item.partition(separator)
        result[key] = rest
    return result


def _listeners(value: str) -> dict[str, str]:
    """``NAME://host:port,...`` -> {NAME: "host:port"}."""
    return _pairs(value, "://")


def test_kafka_is_an_official_single_node_kraft_broker(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", kafka["image"])
    env = _kafka_env(services)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}

    listeners = _listeners(env["KAFKA_LISTENERS"])
    protocols = _pairs(env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"], ":")
    assert set(listeners) == set(protocols)
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller in listeners
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    assert controller not in advertised
    assert advertised["PLAINTEXT"] == "kafka:9092"
    assert listeners["PLAINTEXT"].endswith(":9092")
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised

    voter_id, voter_address = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split("@")
    assert voter_id == env["KAFKA_NODE_ID"]
    assert voter_address == "kafka:" + listeners[controller].rsplit(":", 1)[1]

    # A Kafka uuid: URL-safe base64 of 16 bytes without padding.
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16

    for name in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR",
        "KAFKA_DEFAULT_REPLICATION_FACTOR",
    ):
        assert env[name] == "1", name
    assert "kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])
    assert any(volume.endswith(f":{env['KAFKA_LOG_DIRS']}") for volume in kafka["volumes"])


def test_app_services_share_one_image_built_from_the_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    images = {services[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1
    for name in APP_SERVICES:
        build = services[name]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).is_file()


@pytest.mark.parametrize("name", APP_SERVICES)
def test_each_command_is_a_tokenledger_subcommand(services: dict[str, dict[str, Any]], name: str) -> None:
    command = services[name]["command"]
    assert isinstance(command, list)
    try:
        parse(command)
    except (click.ClickException, IndexError):
        pytest.fail(f"service {name!r}: `tokenledger {' '.join(command)}` is not a valid command line")


def test_api_serves_http_only_on_all_interfaces(services: dict[str, dict[str, Any]]) -> None:
    api = services["api"]
    name, params = parse(api["command"])
    assert (name, params["host"], params["port"]) == ("serve", "0.0.0.0", 8080)
    settings = config.load_settings({key: str(value) for key, value in api["environment"].items()})
    assert settings.workers == frozenset()
    assert any(str(port).endswith(":8080") for port in api["ports"])
    assert "/readyz" in " ".join(api["healthcheck"]["test"])


def _variables_read_by_config() -> set[str]:
    return set(re.findall(r"""environ\.get\(\s*["']([A-Z0-9_]+)["']""", inspect.getsource(config)))


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_environment(services: dict[str, dict[str, Any]], name: str) -> None:
    env = {key: str(value) for key, value in services[name]["environment"].items()}
    postgres = services["postgres"]["environment"]
    user, password, database = (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )
    assert env["DATABASE_URL"] == f"postgresql://{user}:{password}@postgres:5432/{database}"
    assert (
        env["KAFKA_BOOTSTRAP_SERVERS"]
        == _listeners(_kafka_env(services)["KAFKA_ADVERTISED_LISTENERS"])["PLAINTEXT"]
    )
    # The pepper comes from the operator's environment, never a literal in the file.
    assert re.fullmatch(r"\$\{TOKENLEDGER_PEPPER(:\?[^}]*)?\}", env["TOKENLEDGER_PEPPER"])
    unknown = set(env) - _variables_read_by_config()
    assert not unknown, f"{name}: variables that services.config never reads: {sorted(unknown)}"


def test_dependencies_exist_and_are_satisfiable(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for target, spec in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown service {target}"
            assert target != name
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[target], (
                    f"{name} waits for {target}'s health, but it has none"
                )
            elif condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} must run once to complete"
            else:
                assert condition == "service_started"


def test_start_order(services: dict[str, dict[str, Any]]) -> None:
    def conditions(name: str) -> dict[str, str]:
        return {target: spec["condition"] for target, spec in services[name]["depends_on"].items()}

    assert conditions("migrate") == {"postgres": "service_healthy"}
    for name in LONG_RUNNING:
        assert conditions(name)["postgres"] == "service_healthy"
        assert conditions(name)["migrate"] == "service_completed_successfully"
        assert services[name]["restart"] == "unless-stopped"
    assert conditions("relay")["kafka"] == "service_healthy"


def test_dockerfile_installs_the_project_and_runs_its_console_script() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.MULTILINE)
    assert re.search(r"pip (install|wheel)\b.*\s\.(\s|$)", dockerfile)
    entrypoint = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", dockerfile, re.MULTILINE)
    assert entrypoint is not None
    script = json.loads(entrypoint.group(1))[0]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert script in scripts


def test_dockerignore_keeps_the_build_inputs() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", "tests", ".venv"} <= ignored
    assert not {"pyproject.toml", "README.md", "events", "services", "projections"} & ignored
