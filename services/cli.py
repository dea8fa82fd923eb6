"""The ``tokenledger`` command line: one entry point (click) for every process, every administrative
task on the database, and the API client (``tokenledger_client``, mounted here).

Every command returns its exit code; an operator mistake (``services.operator_errors``) or a client
failure ends in one line on stderr and a non-zero code, never a traceback.
"""

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from services.audit.cli import audit
from services.config import ConfigError, load_settings
from services.logs import configure_logging
from services.operator_errors import explain
from tokenledger_client import accounts, roles, teams, tokens
from tokenledger_client import audit as client_audit
from tokenledger_client.errors import EXIT_CODES_HELP, ClientError
from tokenledger_client.session import introspect, login

WORKER_COMMANDS = {
    "projector": "Run the projection runners alone (active or standing by: one runs per database).",
    "scheduler": "Run the scheduler alone: time-driven token events, checkpoints, housekeeping.",
    "relay": "Run the Kafka relay alone (needs KAFKA_BOOTSTRAP_SERVERS).",
}


ROOT_HELP = f"""tokenledger: service accounts, access tokens, roles and teams.

The service and its workers (serve, projector, scheduler, relay, kafka-local), the database's
administration (migrate, bootstrap, projections, audit verify|export|import|...), and the API
client (login, accounts, tokens, roles, teams, introspect, audit events|usage|as-of), which uses
TOKENLEDGER_URL and TOKENLEDGER_TOKEN or what `tokenledger login` stored.

{EXIT_CODES_HELP}

\b
Example:
  tokenledger bootstrap --name admin | tokenledger login --url http://127.0.0.1:8080
  tokenledger accounts create ci-bot && tokenledger tokens issue --account ci-bot --name deploy
"""


@click.group(
    help=ROOT_HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
def tokenledger() -> None:
    configure_logging()


@tokenledger.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="the address to listen on")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option(
    "--processes",
    type=click.IntRange(1, 256),
    default=None,
    help="HTTP processes sharing the port (default: the number of cores); the workers run in one",
)
def serve(host: str, port: int, processes: int | None) -> int:
    """Run the HTTP service (and the workers TOKENLEDGER_WORKERS names); keeps the terminal.

    \b
    Example:
      TOKENLEDGER_WORKERS=all tokenledger serve --host 0.0.0.0 --port 8080 --processes 4
    """
    from services.supervisor import default_processes, run_node

    return run_node(load_settings(), host, port, processes or default_processes())


@tokenledger.command()
def migrate() -> int:
    """Apply the database migrations and exit.

    \b
    Example:
      DATABASE_URL=postgresql://tokenledger@db/tokenledger tokenledger migrate
    """
    from services import database

    settings = load_settings()

    async def run() -> list[str]:
        dsn = await database.resolve_dsn(settings.database_url, settings.data_dir)
        return await database.migrate(dsn)

    applied = asyncio.run(run())
    click.echo(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none needed'}")
    return 0


@tokenledger.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--all", "every", is_flag=True, help="also list look-alikes whose checksum fails")
def scan(paths: tuple[Path, ...], every: bool) -> int:
    """Find spat_ tokens in files and directories, offline; exit 1 when a valid one is found.

    A token is valid when its checksum holds (no database needed). Each finding is printed as
    PATH:LINE:COLUMN, the token shortened, and whether it is valid; a valid one is a leak to revoke.

    \b
    Example:
      tokenledger scan . || echo "a tokenledger token is committed: revoke it"
    """
    from services.scan import scan as find

    leaked = False
    for finding in find(paths):
        if finding.valid or every:
            verdict = "valid" if finding.valid else "look-alike (checksum fails)"
            click.echo(f"{finding.path}:{finding.line}:{finding.column}: {finding.shown} {verdict}")
        leaked = leaked or finding.valid
    return 1 if leaked else 0


@tokenledger.command()
@click.option("--name", required=True, help="the admin account's name")
def bootstrap(name: str) -> int:
    """Create the managed admin account if missing; print a new token for it (stdout, alone).

    \b
    Example:
      tokenledger bootstrap --name admin | tokenledger login --url http://127.0.0.1:8080
    """
    from services.bootstrap_admin import BootstrapRefused, run_bootstrap

    try:
        click.echo(asyncio.run(run_bootstrap(load_settings(), name)))
    except BootstrapRefused as refusal:
        click.echo(f"tokenledger: bootstrap refused: {refusal}", err=True)
        return 1
    return 0


def _worker_command(name: str, about: str) -> click.Command:
    def run() -> int:
        from services.workers import run_worker

        return asyncio.run(run_worker(load_settings(), name))

    return click.Command(name, callback=run, help=f"{about}\n\n\b\nExample:\n  tokenledger {name}")


for _name, _about in WORKER_COMMANDS.items():
    tokenledger.add_command(_worker_command(_name, _about))


@tokenledger.group()
def projections() -> None:
    """Read-model status and rebuilds (against the live database).

    \b
    Example:
      tokenledger projections status
    """


@projections.command()
def status() -> int:
    """Checkpoint and lag of each projection; exit 1 if one has failed.

    The table goes to stdout, what its columns mean to stderr: live is the version (generation of
    tables) serving reads, position the last event it applied, lag what it has not applied yet.

    \b
    Example:
      tokenledger projections status
    """
    from services.projections_admin import status as run

    return asyncio.run(run(load_settings()))


@projections.command()
@click.argument("names", nargs=-1)
@click.option("--all", "every", is_flag=True, help="rebuild every projection")
def rebuild(names: tuple[str, ...], every: bool) -> int:
    """Rebuild projections from the start of the log, then switch to them.

    \b
    Example:
      tokenledger projections rebuild --all
    """
    from services.projections_admin import rebuild as run

    return asyncio.run(run(load_settings(), list(names), every=every))


@tokenledger.command()
@click.option(
    "--type",
    "types",
    multiple=True,
    metavar="TYPE",
    help="only this event type, e.g. token.revoked (repeatable)",
)
@click.option("--from-beginning", is_flag=True, help="start at the oldest record")
@click.option("--group", help="join this consumer group and commit offsets")
@click.option("--limit", type=click.IntRange(min=1), help="exit after printing this many events")
@click.option("--bootstrap-servers", help="default: KAFKA_BOOTSTRAP_SERVERS")
def subscribe(
    types: tuple[str, ...],
    from_beginning: bool,
    group: str | None,
    limit: int | None,
    bootstrap_servers: str | None,
) -> int:
    """Print the events the Kafka relay publishes, as JSON lines (a reference consumer).

    \b
    Example:
      tokenledger subscribe --type token.revoked --from-beginning --limit 10
    """
    from services.relay.cloudevents import Topics
    from services.relay.subscriber import UnknownEventType
    from services.relay.subscriber import subscribe as run

    settings = load_settings()
    bootstrap_to = bootstrap_servers or settings.kafka_bootstrap_servers
    if bootstrap_to is None:
        raise ConfigError("KAFKA_BOOTSTRAP_SERVERS is not set (or pass --bootstrap-servers)")
    topics = Topics(tokens=settings.kafka_tokens_topic, accounts=settings.kafka_accounts_topic)
    try:
        asyncio.run(
            run(bootstrap_to, topics, list(types), group=group, from_beginning=from_beginning, limit=limit)
        )
    except UnknownEventType as error:
        click.echo(f"tokenledger subscribe: {error}", err=True)
        return 2
    return 0


@tokenledger.command("kafka-local")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="PLAINTEXT listener port on 127.0.0.1 (default: a free port; Kafka cannot use 0)",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="broker data directory, kept across runs (default: $TOKENLEDGER_DATA_DIR/kafka)",
)
def kafka_local(port: int | None, data_dir: Path | None) -> int:
    """Run a single-node Kafka broker (fetched with Maven, run with Java 17+) in the foreground.

    Prints one line, KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:PORT, then keeps the terminal until
    Ctrl-C. Give serve (or relay) that variable to publish there.

    \b
    Example:
      tokenledger kafka-local --port 9092
    """
    from services.kafka_local.cli import run_kafka_local

    return run_kafka_local(port, data_dir)


tokenledger.add_command(audit)
for _client_command in (client_audit.events, client_audit.usage, client_audit.as_of):
    audit.add_command(_client_command)
for _client_group in (accounts.accounts, tokens.tokens, roles.roles, teams.teams):
    tokenledger.add_command(_client_group)
tokenledger.add_command(login)
tokenledger.add_command(introspect)


def run(command: click.Command, argv: Sequence[str] | None = None, prog_name: str = "tokenledger") -> int:
    """Runs ``command`` on ``argv``; its exit code (a mistake's one line and code instead of a
    traceback)."""
    try:
        code = command.main(
            list(argv) if argv is not None else None, prog_name=prog_name, standalone_mode=False
        )
    except ClientError as failure:
        failure.show()
        return int(failure.code)
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.Abort:
        click.echo("tokenledger: interrupted", err=True)
        return 130
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        line = explain(error)
        if line is None:
            raise
        click.echo(f"tokenledger: {line}", err=True)
        return 2 if isinstance(error, ConfigError) else 1
    return code if isinstance(code, int) else 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(tokenledger, argv)


if __name__ == "__main__":
    sys.exit(main())
