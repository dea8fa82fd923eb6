"""README.md opens with the two set-up commands, and .ci/run runs exactly the second one."""

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
