"""The ``tokenledger`` command line: one entry point for every process and administrative task."""

import argparse
import asyncio
import sys
from collections.abc import Sequence

from services.config import ConfigError, load_settings
from services.logs import configure_logging


def _serve(args: argparse.Namespace) -> int:
    from services.serve import serve

    return asyncio.run(serve(load_settings(), args.host, args.port))


def _migrate(_args: argparse.Namespace) -> int:
    from services import database

    settings = load_settings()

    async def run() -> list[str]:
        dsn = await database.resolve_dsn(settings.database_url, settings.data_dir)
        return await database.migrate(dsn)

    applied = asyncio.run(run())
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none needed'}")
    return 0


def _worker(args: argparse.Namespace) -> int:
    from services.workers import run_worker

    return asyncio.run(run_worker(load_settings(), args.command))


def _bootstrap(args: argparse.Namespace) -> int:
    from services.bootstrap_admin import BootstrapRefused, run_bootstrap

    try:
        print(asyncio.run(run_bootstrap(load_settings(), args.name)))
    except BootstrapRefused as refusal:
        print(f"tokenledger: bootstrap refused: {refusal}", file=sys.stderr)
        return 1
    return 0


def _projections(args: argparse.Namespace) -> int:
    from services.projections_admin import rebuild, status

    settings = load_settings()
    if args.action == "status":
        return asyncio.run(status(settings))
    return asyncio.run(rebuild(settings, args.names, every=args.all))


def _subscribe(args: argparse.Namespace) -> int:
    from services.relay.cloudevents import Topics
    from services.relay.subscriber import UnknownEventType, subscribe

    settings = load_settings()
    bootstrap = args.bootstrap_servers or settings.kafka_bootstrap_servers
    if bootstrap is None:
        raise ConfigError("KAFKA_BOOTSTRAP_SERVERS is not set (or pass --bootstrap-servers)")
    topics = Topics(tokens=settings.kafka_tokens_topic, accounts=settings.kafka_accounts_topic)
    try:
        asyncio.run(
            subscribe(
                bootstrap,
                topics,
                args.types,
                group=args.group,
                from_beginning=args.from_beginning,
                limit=args.limit,
            )
        )
    except UnknownEventType as error:
        print(f"tokenledger subscribe: {error}", file=sys.stderr)
        return 2
    return 0


def _audit(args: argparse.Namespace) -> int:
    from services.audit.commands import run_audit

    return asyncio.run(run_audit(load_settings(), args))


def _kafka_local(args: argparse.Namespace) -> int:
    from services.kafka_local import run_kafka_local

    return run_kafka_local(args.port, args.data_dir)


WORKER_COMMANDS = {
    "projector": "run the projection runners alone",
    "scheduler": "run the scheduler alone (time-driven token events)",
    "relay": "run the Kafka relay alone",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tokenledger", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve", help="run the HTTP service (and the workers, see TOKENLEDGER_WORKERS)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser("migrate", help="apply database migrations and exit")
    migrate.set_defaults(handler=_migrate)

    bootstrap = commands.add_parser(
        "bootstrap", help="create the managed admin account if missing; print a new token for it"
    )
    bootstrap.add_argument("--name", required=True, help="the admin account's name")
    bootstrap.set_defaults(handler=_bootstrap)

    for name, about in WORKER_COMMANDS.items():
        commands.add_parser(name, help=about).set_defaults(handler=_worker)

    projections = commands.add_parser("projections", help="read-model status and rebuilds")
    actions = projections.add_subparsers(dest="action", required=True)
    actions.add_parser("status", help="checkpoint and lag of each projection").set_defaults(
        handler=_projections
    )
    rebuild = actions.add_parser("rebuild", help="rebuild from the start of the log, then switch")
    rebuild.add_argument("names", nargs="*", help="projections to rebuild")
    rebuild.add_argument("--all", action="store_true", help="rebuild every projection")
    rebuild.set_defaults(handler=_projections)

    subscribe = commands.add_parser(
        "subscribe", help="print the events the Kafka relay publishes, as JSON lines (a reference consumer)"
    )
    subscribe.add_argument(
        "--type",
        dest="types",
        action="append",
        default=[],
        metavar="TYPE",
        help="only this event type, e.g. token.revoked (repeatable; default: every type)",
    )
    subscribe.add_argument("--from-beginning", action="store_true", help="start at the oldest record")
    subscribe.add_argument("--group", help="join this consumer group and commit offsets")
    subscribe.add_argument("--limit", type=int, help="exit after printing this many events")
    subscribe.add_argument("--bootstrap-servers", help="default: KAFKA_BOOTSTRAP_SERVERS")
    subscribe.set_defaults(handler=_subscribe)

    from services.audit.cli import add_cli_arguments as add_audit_arguments

    audit = commands.add_parser(
        "audit", help="tamper check, checkpoints, export/import of the log, rights as of a time"
    )
    add_audit_arguments(audit)
    audit.set_defaults(handler=_audit)

    from services.kafka_local import add_cli_arguments

    kafka = commands.add_parser("kafka-local", help="run a single-node Kafka broker fetched with Maven")
    add_cli_arguments(kafka)
    kafka.set_defaults(handler=_kafka_local)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        configure_logging()
        exit_code: int = args.handler(args)
    except ConfigError as error:
        print(f"tokenledger: configuration error: {error}", file=sys.stderr)
        return 2
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
