"""``tokenledger serve`` serves the web console beside the API (a real process): ``/`` leads to it,
its assets are in the package, a sign-in makes a session of the configured lifetime, the access
log names the caller of a page, and the process's log holds neither the token nor the session's
cookie."""

import json
import re
from datetime import timedelta
from pathlib import Path

import aiohttp
import asyncpg

from services.console.guard import SESSION_COOKIE
from tests.service_process import ServiceProcess, bootstrap_token


async def test_serve_serves_the_console(empty_database: str, tmp_path: Path) -> None:
    token = await bootstrap_token(empty_database, tmp_path)
    service = ServiceProcess(
        empty_database, tmp_path, TOKENLEDGER_CONSOLE_SESSION_HOURS="2", TOKENLEDGER_LOG_FORMAT="json"
    )
    await service.start()
    try:
        jar = aiohttp.CookieJar(unsafe=True)  # cookies of 127.0.0.1
        async with aiohttp.ClientSession(service.url, cookie_jar=jar) as client:
            async with client.get("/", allow_redirects=False) as root:
                assert (root.status, root.headers["Location"]) == (302, "/console/")
            async with client.get("/console/static/htmx.min.js") as script:
                assert script.status == 200 and "htmx" in await script.text()
            async with client.get("/console/sign-in") as form:
                csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', await form.text())
                assert csrf is not None
            fields = {"csrf": csrf.group(1), "token": token}
            async with client.post("/console/sign-in", data=fields) as signed_in:
                assert signed_in.status == 200 and "Service accounts" in await signed_in.text()
            cookie = next(c for c in jar if c.key == SESSION_COOKIE).value
            async with client.get("/console/accounts") as accounts:
                assert accounts.status == 200 and "tokenledger bootstrap" in await accounts.text()
    finally:
        await service.stop()
    connection = await asyncpg.connect(empty_database)
    try:
        lifetimes = await connection.fetch("SELECT expires_at - created_at AS lifetime FROM console_sessions")
    finally:
        await connection.close()
    assert [row["lifetime"] for row in lifetimes] == [timedelta(hours=2)]
    log = service.log_text()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    pages = [line for line in lines if line.get("path") == "/console/accounts"]
    assert pages and all(page["status"] == 200 and page["account_id"] for page in pages)  # who called
    assert token not in log and cookie not in log
