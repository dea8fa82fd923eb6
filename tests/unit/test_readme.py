"""README.md opens with the two set-up commands, and .ci/run runs exactly the second one (after
installing the Chromium the console's browser tests drive)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_readme_opens_with_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert text.index("```sh") < text.index("\n## ")
    commands = _readme_commands()
    assert len(commands) == 2
    assert commands[0].endswith("tokenledger serve")
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command() -> None:
    script = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _readme_commands()[1] in script


def test_ci_installs_the_browser_the_console_tests_drive() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    conftest = (ROOT / "tests" / "console" / "conftest.py").read_text()
    assert 'CHROMIUM = "/usr/bin/chromium"' in conftest
    assert "[ ! -x /usr/bin/chromium ]" in script and "apt-get install -y chromium" in script
    assert script.index("apt-get install -y chromium") < script.index(_readme_commands()[1])
