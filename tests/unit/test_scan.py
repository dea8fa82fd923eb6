"""``tokenledger scan``: real tokens (their checksum holds) are found in files and directories and
make it exit 1, shortened in its output; look-alikes are told apart; docs/gitleaks.toml matches the
same tokens."""

import re
import tomllib
from pathlib import Path

from click.testing import CliRunner

from services.cli import tokenledger
from services.tokens.secrets import generate_secret

ROOT = Path(__file__).resolve().parents[2]


def _look_alike() -> str:
    real = generate_secret()
    return real[:-1] + ("A" if real[-1] != "A" else "B")


def test_scan_finds_real_tokens_and_tells_look_alikes_apart(tmp_path: Path) -> None:
    real, fake = generate_secret(), _look_alike()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "config.env").write_text(f"A=1\nTOKEN={real}\n")
    (tmp_path / "notes.md").write_text(f"an example: {fake} and spat_short and x{generate_secret()}\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "objects").write_text(generate_secret())
    result = CliRunner().invoke(tokenledger, ["scan", str(tmp_path)], standalone_mode=False)
    assert result.return_value == 1
    assert f"config.env:2:7: {real[:9]}…{real[-4:]} valid" in result.output
    assert real not in result.output and "notes.md" not in result.output
    every = CliRunner().invoke(tokenledger, ["scan", "--all", str(tmp_path)], standalone_mode=False)
    assert "notes.md:1:13:" in every.output and "look-alike" in every.output
    assert fake not in every.output


def test_a_tree_without_a_real_token_passes(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(f"{_look_alike()}\n")
    result = CliRunner().invoke(tokenledger, ["scan", str(tmp_path)], standalone_mode=False)
    assert result.return_value == 0 and result.output == ""


def test_the_gitleaks_rule_matches_our_tokens_only() -> None:
    rule = tomllib.loads((ROOT / "docs" / "gitleaks.toml").read_text())["rules"][0]
    pattern = re.compile(rule["regex"])
    real = generate_secret()
    assert pattern.search(f"TOKEN={real}\n").group(1) == real  # type: ignore[union-attr]
    assert pattern.search(f"x{real}") is None
    assert pattern.search(f"{real}Z") is None
    assert pattern.search("spat_tooshort") is None
