"""The signing keys of OIDC issuers, fetched with aiohttp and cached per issuer.

An issuer's keys come from its discovery document (``<issuer>/.well-known/openid-configuration``,
whose ``issuer`` must be the issuer exactly) and the ``jwks_uri`` it names (https). Every fetch is
bounded: no redirect is followed, each request has a total timeout, and a body over
``MAX_DOCUMENT_BYTES`` is refused. Keys are kept for ``ttl`` seconds; a key id the cache does not
hold makes it fetch again, at most every ``refetch_interval`` seconds per issuer (a flood of tokens
with made-up ``kid`` values costs the issuer one request per interval). When a fetch fails the keys
already held keep serving. One fetch per issuer at a time.
"""

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import jwt
import msgspec

MAX_DOCUMENT_BYTES = 64 * 1024
MAX_KEYS = 32
SIGNING_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})
_log = logging.getLogger(__name__)


class KeyFetchFailed(Exception):
    """The issuer's discovery document or key set could not be read (for the logs)."""


class _Entry(msgspec.Struct):
    keys: dict[str, jwt.PyJWK]
    fetched_at: float
    attempted_at: float


class IssuerKeys:
    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        ttl: float = 300.0,
        refetch_interval: float = 30.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._ttl = ttl
        self._refetch_interval = refetch_interval
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def key(self, issuer: str, kid: str) -> jwt.PyJWK | None:
        """The issuer's key ``kid``, or None when the issuer does not publish it (now)."""
        entry = self._entries.get(issuer)
        now = self._clock()
        stale = entry is None or now - entry.fetched_at >= self._ttl
        unknown = entry is not None and kid not in entry.keys
        if stale or (unknown and entry is not None and now - entry.attempted_at >= self._refetch_interval):
            entry = await self._refresh(issuer, entry)
        return None if entry is None else entry.keys.get(kid)

    async def _refresh(self, issuer: str, seen: _Entry | None) -> _Entry | None:
        lock = self._locks.setdefault(issuer, asyncio.Lock())
        async with lock:
            current = self._entries.get(issuer)
            if current is not seen:
                return current
            now = self._clock()
            try:
                keys = await self._fetch_keys(issuer)
            except (KeyFetchFailed, aiohttp.ClientError, TimeoutError) as error:
                _log.warning("could not fetch the keys of the OIDC issuer %r: %s", issuer[:255], error)
                if current is not None:
                    current.attempted_at = now
                return current
            entry = _Entry(keys=keys, fetched_at=now, attempted_at=now)
            self._entries[issuer] = entry
            return entry

    async def _fetch_keys(self, issuer: str) -> dict[str, jwt.PyJWK]:
        discovery = await self._fetch_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
        if discovery.get("issuer") != issuer:
            raise KeyFetchFailed("the discovery document names another issuer")
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or urlsplit(jwks_uri).scheme != "https":
            raise KeyFetchFailed("the discovery document has no https jwks_uri")
        document = await self._fetch_json(jwks_uri)
        found = document.get("keys")
        if not isinstance(found, list):
            raise KeyFetchFailed("the key set has no keys")
        keys: dict[str, jwt.PyJWK] = {}
        for item in found[:MAX_KEYS]:
            if not isinstance(item, dict) or item.get("kty") not in SIGNING_KEY_TYPES:
                continue
            kid = item.get("kid")
            if not isinstance(kid, str) or item.get("use", "sig") != "sig":
                continue
            try:
                keys[kid] = jwt.PyJWK(item)
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
                continue
        return keys

    async def _fetch_json(self, url: str) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        async with self._session.get(url, allow_redirects=False, ssl=self._ssl) as response:
            if response.status != 200:
                raise KeyFetchFailed(f"{url[:255]} answered {response.status}")
            if (response.content_length or 0) > MAX_DOCUMENT_BYTES:
                raise KeyFetchFailed(f"{url[:255]} is over {MAX_DOCUMENT_BYTES} bytes")
            body = bytearray()
            async for chunk in response.content.iter_chunked(8192):
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise KeyFetchFailed(f"{url[:255]} is over {MAX_DOCUMENT_BYTES} bytes")
        try:
            document = json.loads(body)
        except ValueError:
            raise KeyFetchFailed(f"{url[:255]} is not JSON") from None
        if not isinstance(document, dict):
            raise KeyFetchFailed(f"{url[:255]} is not a JSON object")
        return document
