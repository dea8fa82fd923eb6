"""The access-token secret format: generation, an offline well-formedness check, and the stored hash.

A secret is ``spat_`` + 44 random base62 characters + 6 base62 characters holding the CRC32 of the
random part (55 characters in all, the length of Konnect's own ``spat_`` tokens). 44 characters from
an alphabet of 62 carry about 262 bits, drawn from ``secrets`` (the OS CSPRNG). The checksum is not
a security feature: it lets us, and secret scanners (GitHub push protection and the like), tell a
real token from a look-alike without a database round trip. CRC32 detects every single-character
change (any burst error of at most 32 bits), so a typo never costs a lookup.

A command carrying an idempotency key draws its secret with ``derived_secret`` instead: HMAC-SHA512
under a key derived from the pepper (HKDF-SHA256, info ``tokenledger idempotent secret``, so it is
no other use's key) over the command's derivation (credential, key, request, token, secret version),
reduced to 44 base62 characters. A retry of that command thus produces the very secret whose hash is
stored, and can return it, instead of a new one that nothing knows. Only the pepper's holder can
compute it, and only knowing the client's key and request.

What the service stores is never the secret but ``secret_hash``: HMAC-SHA256 under the deployment's
pepper (``services.pepper``), so a leaked log or database alone cannot be used to test guesses.
"""

import hmac
import secrets
import zlib

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "spat_"
RANDOM_LENGTH = 44
CHECKSUM_LENGTH = 6
SECRET_LENGTH = len(PREFIX) + RANDOM_LENGTH + CHECKSUM_LENGTH

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ALPHABET_SET = frozenset(ALPHABET)
_BASE = len(ALPHABET)
assert _BASE**CHECKSUM_LENGTH > 2**32  # six base62 digits hold any CRC32
DERIVATION_INFO = b"tokenledger idempotent secret"
# 512 bits reduced modulo 62**44 (about 2**262): the bias is below 2**-250.
assert _BASE**RANDOM_LENGTH * 2**249 < 2**512


def _checksum(random_part: str) -> str:
    """The CRC32 of ``random_part`` (ASCII) in base62, most significant digit first, zero-padded."""
    value = zlib.crc32(random_part.encode("ascii"))
    digits = []
    for _ in range(CHECKSUM_LENGTH):
        value, digit = divmod(value, _BASE)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


def generate_secret() -> str:
    """A new, well-formed secret. Show it to the caller once; store only ``secret_hash`` of it."""
    random_part = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))
    return PREFIX + random_part + _checksum(random_part)


def derived_secret(pepper: bytes, derivation: str) -> str:
    """The well-formed secret for ``derivation`` under ``pepper``: the same on every call."""
    if not pepper:
        raise ValueError("the pepper must not be empty")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=DERIVATION_INFO).derive(pepper)
    value = int.from_bytes(hmac.digest(key, derivation.encode("utf-8", "surrogatepass"), "sha512"))
    digits = []
    for _ in range(RANDOM_LENGTH):
        value, digit = divmod(value, _BASE)
        digits.append(ALPHABET[digit])
    random_part = "".join(digits)
    return PREFIX + random_part + _checksum(random_part)


def is_well_formed(candidate: object) -> bool:
    """Prefix, length, alphabet and checksum are right. Needs no database and no pepper, so
    anything that fails it is rejected without a lookup (and scanners can run the same test)."""
    if not isinstance(candidate, str) or len(candidate) != SECRET_LENGTH:
        return False
    if not candidate.startswith(PREFIX):
        return False
    body = candidate[len(PREFIX) :]
    # An explicit set, not str.isalnum(): that would accept non-ASCII letters and digits.
    if not _ALPHABET_SET.issuperset(body):
        return False
    random_part, checksum = body[:RANDOM_LENGTH], body[RANDOM_LENGTH:]
    return hmac.compare_digest(_checksum(random_part), checksum)


def secret_hash(secret: str, pepper: bytes) -> str:
    """HMAC-SHA256 of the secret under the pepper, lowercase hex: the value the log and the
    verification read model hold."""
    if not pepper:
        raise ValueError("the pepper must not be empty")
    return hmac.digest(pepper, secret.encode("utf-8"), "sha256").hex()
