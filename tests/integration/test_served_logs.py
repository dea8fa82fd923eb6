"""What ``tokenledger serve`` itself writes to its log (a real process): no token in clear and no
forged line, whatever the requests contain, including requests the HTTP parser refuses; in the
JSON format, every line one object, the access lines with their request id."""

import asyncio
import json
import urllib.parse
from pathlib import Path

from services.tokens.secrets import PREFIX
from tests.service_process import ServiceProcess, bootstrap_token


async def send_raw(url: str, head: bytes) -> bytes:
    """``head`` byte for byte, then the blank line; the whole answer."""
    parts = urllib.parse.urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(head + b"\r\nHost: tokenledger\r\nConnection: close\r\n\r\n")
        await writer.drain()
        return await reader.read()
    finally:
        writer.close()


async def test_the_service_log_holds_no_token_and_no_forged_line(empty_database: str, tmp_path: Path) -> None:
    token = await bootstrap_token(empty_database, tmp_path)
    body = token.removeprefix(PREFIX)
    service = ServiceProcess(empty_database, tmp_path)
    await service.start()
    try:
        bearer = b"Authorization: Bearer " + token.encode()
        refused = await send_raw(service.url, b"GET /v3/system-accounts HTTP/1.1\r\n" + bearer + b"\x01")
        assert refused.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request")  # the parser refuses the line
        pasted = await send_raw(service.url, b"GET /v3/" + token.encode() + b" HTTP/1.1\r\n" + bearer)
        assert pasted.startswith(b"HTTP/1.1 404")
        forged = urllib.parse.quote('x\n127.0.0.1 "GET /v3/forged HTTP/1.1" 200 0 0.1ms\x1b[2J', safe="")
        assert (await send_raw(service.url, f"GET /v3/{forged} HTTP/1.1\r\n".encode() + bearer)).startswith(
            b"HTTP/1.1 404"
        )
    finally:
        await service.stop()
    log = service.log_text()
    assert "Invalid header value char" in log and "Traceback" not in log
    assert body not in log
    assert '"GET /v3/[redacted]" 404' in log
    assert "\x1b" not in log
    assert not any(line.startswith('127.0.0.1 "GET /v3/forged') for line in log.splitlines())


async def test_the_json_log_is_one_object_per_line_with_each_request_id(
    empty_database: str, tmp_path: Path
) -> None:
    token = await bootstrap_token(empty_database, tmp_path)
    service = ServiceProcess(empty_database, tmp_path, TOKENLEDGER_LOG_FORMAT="json")
    await service.start()
    try:
        bearer = b"Authorization: Bearer " + token.encode()
        answer = await send_raw(
            service.url, b"GET /v3/system-accounts HTTP/1.1\r\nX-Request-Id: trace-1.a\r\n" + bearer
        )
        assert answer.startswith(b"HTTP/1.1 200") and b"X-Request-Id: trace-1.a" in answer
        forged = urllib.parse.quote('x\n{"forged": 1}\x1b[2J', safe="")
        assert (await send_raw(service.url, f"GET /v3/{forged} HTTP/1.1\r\n".encode() + bearer)).startswith(
            b"HTTP/1.1 404"
        )
    finally:
        await service.stop()
    lines = [json.loads(line) for line in service.log_text().splitlines()]
    (access,) = [line for line in lines if line.get("request_id") == "trace-1.a"]
    assert (access["method"], access["route"], access["status"]) == ("GET", "/v3/system-accounts", 200)
    assert access["account_id"] and access["token_id"] and access["latency_ms"] >= 0
    assert any(line["message"] == "ready" for line in lines)
    assert not any("forged" in line for line in lines)
    assert token.removeprefix(PREFIX) not in service.log_text() and "\x1b" not in service.log_text()
