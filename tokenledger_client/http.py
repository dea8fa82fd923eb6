"""A blocking facade over aiohttp's client: one event loop and one session per command.

Every answer is JSON (or empty); a problem answer becomes a :class:`ClientError` with its exit code,
a network failure one with ``Exit.UNREACHABLE``. The token travels only in the ``Authorization``
header and never appears in an error line. aiohttp is imported on the first request, so ``--help``
and bad arguments answer at once.
"""

import asyncio
import json
import urllib.parse
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from tokenledger_client.errors import ClientError, Exit, for_status, problem_line
from tokenledger_client.target import Target, load_target

if TYPE_CHECKING:
    import aiohttp

TIMEOUT_SECONDS = 30.0
PAGE_SIZE = 100
Query = Mapping[str, str | int]


class Api:
    def __init__(self, target: Target, timeout: float = TIMEOUT_SECONDS) -> None:
        self.target = target
        self._timeout = timeout
        self._runner = asyncio.Runner()
        self._session: aiohttp.ClientSession | None = None

    def __enter__(self) -> "Api":
        self._runner.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._session is not None:
            self._runner.run(self._session.close())
        self._runner.__exit__(kind, error, trace)

    async def _open(self) -> "aiohttp.ClientSession":
        import aiohttp

        if self._session is None:
            headers = {"Authorization": f"Bearer {self.target.token}", "User-Agent": "tokenledger-cli"}
            timeout = aiohttp.ClientTimeout(total=self._timeout)
            self._session = aiohttp.ClientSession(headers=headers, timeout=timeout)
        return self._session

    async def _send(self, method: str, path: str, query: Query | None, body: Any) -> tuple[int, bytes]:
        session = await self._open()
        headers = {}
        data = None if body is None else json.dumps(body, separators=(",", ":"))
        if data is not None:
            headers["Content-Type"] = "application/json"
        url = self.target.url + path
        params = {key: str(value) for key, value in (query or {}).items()}
        async with session.request(method, url, params=params, data=data, headers=headers) as response:
            return response.status, await response.read()

    def request(self, method: str, path: str, *, query: Query | None = None, body: Any = None) -> Any:
        """The decoded answer (None when empty); a ClientError for anything but a 2xx."""
        import aiohttp

        try:
            status, content = self._runner.run(self._send(method, path, query, body))
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            reason = str(error) or type(error).__name__
            raise ClientError(f"cannot reach {self.target.url}: {reason}", Exit.UNREACHABLE) from None
        decoded = _decode(content)
        if not 200 <= status < 300:
            raise ClientError(problem_line(status, decoded), for_status(status))
        return decoded

    def get(self, path: str, query: Query | None = None) -> Any:
        return self.request("GET", path, query=query)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, body=body)

    def patch(self, path: str, body: Any = None) -> Any:
        return self.request("PATCH", path, body=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def every(self, path: str, query: Query | None = None) -> list[Any]:
        """Every item of a Konnect page-number collection, all pages."""
        items: list[Any] = []
        number = 1
        while True:
            page = self.get(path, {**(query or {}), "page[size]": PAGE_SIZE, "page[number]": number})
            data = page.get("data") or []
            items.extend(data)
            total = (page.get("meta") or {}).get("page", {}).get("total")
            if not data or not isinstance(total, int) or len(items) >= total:
                return items
            number += 1

    def following(self, path: str, query: Query | None = None, limit: int | None = None) -> Iterator[Any]:
        """The items of a cursor collection (audit events, usage), following ``meta.page.next``."""
        yielded = 0
        next_query: Query = {**(query or {}), "page[size]": PAGE_SIZE}
        while True:
            page = self.get(path, next_query)
            for item in page.get("data") or []:
                if limit is not None and yielded >= limit:
                    return
                yielded += 1
                yield item
            link = (page.get("meta") or {}).get("page", {}).get("next")
            if not link:
                return
            next_query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(link).query))


def connect() -> Api:
    """``with connect() as api: ...``, to the configured target (exit 2 when there is none)."""
    return Api(load_target())


def _decode(content: bytes) -> Any:
    if not content:
        return None
    try:
        return json.loads(content)
    except ValueError:
        raise ClientError("the server answered something that is not JSON", Exit.FAILED) from None
