"""Which request an idempotency key names: the key's rules, the request's fingerprint, the scope digest.

A key is 1..255 printable characters (``key_problem`` says what is wrong with one). The fingerprint
of a request is what a retry must repeat under the same key; the scope digest of (credential, method,
route, key, fingerprint) is what handlers derive their ids and secrets from, the same on every retry.
"""

import hashlib

import msgspec

MAX_KEY_LENGTH = 255


def key_problem(key: str) -> str | None:
    """Why ``key`` is not a usable idempotency key (``blank``, ``too_long``, ``not_printable``), or
    None when it is one."""
    if not key.strip():
        return "blank"
    if len(key) > MAX_KEY_LENGTH:
        return "too_long"
    if not key.isprintable():
        return "not_printable"
    return None


def scope_digest(parts: tuple[str | bytes, ...]) -> str:
    """A SHA-256 over ``parts``, each length-prefixed (so no two tuples share a digest by concatenation)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
        digest.update(len(data).to_bytes(4, "big") + data)
    return digest.hexdigest()


def request_fingerprint(method: str, path_qs: str, body: bytes) -> str:
    """Method + path and query + SHA-256 of the canonical body (JSON re-encoded with sorted keys; an
    empty body counts as ``{}``; a body that is not JSON, or too deep to re-encode, as its bytes)."""
    if not body.strip():
        body = b"{}"
    try:
        canonical = msgspec.json.encode(msgspec.json.decode(body), order="sorted")
    except (msgspec.DecodeError, RecursionError):
        # Not JSON, or nested too deep to re-encode: the bytes themselves are the request.
        canonical = body
    return scope_digest((method.upper(), path_qs, hashlib.sha256(canonical).digest()))
