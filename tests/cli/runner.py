"""``tokenledger`` as a user runs it: a real process (``python -m services.cli``), its exit code, stdout
and stderr, with the environment the test chooses (never the developer's login file: the config
directory is the test's own)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code == 0, self.err
        return json.loads(self.out)

    def yaml(self) -> Any:
        assert self.code == 0, self.err
        return yaml.safe_load(self.out)


class Cli:
    def __init__(self, config_home: Path, **environment: str) -> None:
        self.environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TOKENLEDGER_")},
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "XDG_CONFIG_HOME": str(config_home),
            **environment,
        }

    def with_environment(self, **changes: str | None) -> Cli:
        other = Cli(Path(self.environment["XDG_CONFIG_HOME"]))
        other.environment = {**self.environment}
        for key, value in changes.items():
            if value is None:
                other.environment.pop(key, None)
            else:
                other.environment[key] = value
        return other

    async def __call__(self, *args: str, stdin: str | None = None) -> Ran:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", *args,
            env=self.environment,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await process.communicate(None if stdin is None else stdin.encode())
        assert process.returncode is not None
        return Ran(process.returncode, out.decode(), err.decode())
