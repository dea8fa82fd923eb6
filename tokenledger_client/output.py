"""How a client command shows what it got: a table on a terminal (rich), JSON or YAML for scripts.

``-o table|json|yaml`` (default: a table when stdout is a terminal, JSON otherwise); JSON and YAML
print the API's own shapes: one object, or for a list the array of its items (every page). ``-q``
prints only the ids, one a line (nothing for a command without a result). Messages meant for a
person (what was done) go to stderr, so stdout is always data.
"""

import functools
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import click

from tokenledger_client.errors import printable

FORMATS = ("table", "json", "yaml")


@dataclass(frozen=True)
class Output:
    format: str
    quiet: bool
    chosen: bool = False
    """Whether ``-o`` was given (``tokens issue`` prints the secret alone unless it was)."""

    def show(self, result: Any, columns: Sequence[str]) -> None:
        """One object or a list of objects (the API's items), in the chosen format."""
        if self.quiet:
            for item in result if isinstance(result, list) else [result]:
                if isinstance(item, dict) and "id" in item:
                    click.echo(item["id"])
            return
        if self.format == "json":
            click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        elif self.format == "yaml":
            import yaml

            click.echo(yaml.safe_dump(result, sort_keys=False, allow_unicode=True), nl=False)
        else:
            _table(result if isinstance(result, list) else [result], columns)

    def done(self, message: str) -> None:
        """What a command did, for a person: stderr, and not with --quiet."""
        if not self.quiet:
            click.echo(message, err=True)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_cell(item) for item in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{key}={_cell(item)}" for key, item in value.items()) or "-"
    return printable(str(value))


def _table(rows: list[Any], columns: Sequence[str]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    # Off a terminal (``-o table`` into a pipe) nothing is cut to 80 columns.
    width = None if sys.stdout.isatty() else 10_000
    console = Console(width=width, soft_wrap=False, highlight=False, emoji=False, markup=False)
    if not rows:
        click.echo("(none)", err=True)
        return
    table = Table(*columns, box=None, pad_edge=False, header_style="bold")
    for row in rows:
        table.add_row(*(Text(_cell(row.get(column) if isinstance(row, dict) else row)) for column in columns))
    console.print(table)


def output_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``-o/--output`` and ``-q/--quiet``, given to the command as ``output: Output``."""

    @functools.wraps(command)
    def with_output(*args: Any, output_format: str | None, quiet: bool, **kwargs: Any) -> Any:
        shown = output_format or ("table" if sys.stdout.isatty() else "json")
        output = Output(shown, quiet, chosen=output_format is not None)
        return command(*args, output=output, **kwargs)

    with_output = click.option("-q", "--quiet", is_flag=True, help="print only ids, one a line")(with_output)
    return click.option(
        "-o",
        "--output",
        "output_format",
        type=click.Choice(FORMATS),
        help="table (default on a terminal), json (default otherwise) or yaml: the API's shapes",
    )(with_output)
