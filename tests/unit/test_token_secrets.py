"""The access-token secret format: shape, checksum, randomness, and the peppered hash."""

import collections
import hashlib
import hmac
import math
import string
import zlib
from pathlib import Path

import pytest

from services.tokens import secrets as token_secrets
from services.tokens.secrets import (
    ALPHABET,
    CHECKSUM_LENGTH,
    PREFIX,
    RANDOM_LENGTH,
    SECRET_LENGTH,
    generate_secret,
    is_well_formed,
    secret_hash,
)

PEPPER = b"p" * 32


def test_the_format_is_spat_44_random_and_6_checksum_characters() -> None:
    secret = generate_secret()
    assert SECRET_LENGTH == 55 == len(secret)
    assert secret.startswith("spat_")
    assert set(secret[len(PREFIX) :]) <= set(string.ascii_letters + string.digits)
    assert len(secret) == len(PREFIX) + RANDOM_LENGTH + CHECKSUM_LENGTH


def test_generated_secrets_are_well_formed_and_distinct() -> None:
    secrets = [generate_secret() for _ in range(2000)]
    assert all(is_well_formed(s) for s in secrets)
    assert len(set(secrets)) == len(secrets)


def test_the_checksum_is_the_zero_padded_base62_crc32_of_the_random_part() -> None:
    random_part = "0" * RANDOM_LENGTH
    value = zlib.crc32(random_part.encode())
    digits = ""
    for _ in range(CHECKSUM_LENGTH):
        value, digit = divmod(value, 62)
        digits = ALPHABET[digit] + digits
    assert is_well_formed(PREFIX + random_part + digits)
    # A small CRC still takes six digits (leading zeros), so the length never varies.
    assert token_secrets._checksum("") == "000000"


def test_every_single_character_change_is_caught() -> None:
    for _ in range(3):
        secret = generate_secret()
        for position in range(len(PREFIX), SECRET_LENGTH):
            for replacement in ALPHABET:
                if replacement == secret[position]:
                    continue
                changed = secret[:position] + replacement + secret[position + 1 :]
                assert not is_well_formed(changed), (position, replacement)


def test_swapping_two_adjacent_different_characters_is_caught() -> None:
    secret = generate_secret()
    body = len(PREFIX)
    for position in range(body, body + RANDOM_LENGTH - 1):
        a, b = secret[position], secret[position + 1]
        if a != b:
            swapped = secret[:position] + b + a + secret[position + 2 :]
            assert not is_well_formed(swapped)


@pytest.mark.parametrize(
    "candidate",
    [
        "",
        "spat_",
        "kpat_" + "A" * 50,
        "SPAT_" + "A" * 50,
        "spat_12345678901234567890123456789012345678901234567890",  # Konnect's documentation example
        "spat_" + "A" * 49,
        "spat_" + "A" * 51,
        " spat_" + "A" * 49,
        None,
        b"spat_" + b"A" * 50,
        55,
    ],
)
def test_look_alikes_are_not_well_formed(candidate: object) -> None:
    assert not is_well_formed(candidate)


def test_characters_outside_the_ascii_alphabet_are_refused() -> None:
    secret = generate_secret()
    for intruder in ("-", "_", "+", "/", "=", " ", "\n", "\x00", "é", "٣", "Ａ"):  # noqa: RUF001
        changed = secret[:10] + intruder + secret[11:]
        assert len(changed) == SECRET_LENGTH
        assert not is_well_formed(changed)


def test_random_characters_are_uniform_enough() -> None:
    """A chi-squared test over 100k characters: a biased generator (modulo bias, a short alphabet)
    would fail it; a fair one fails with probability about 1e-6."""
    counts: collections.Counter[str] = collections.Counter()
    n_secrets = 2300
    for _ in range(n_secrets):
        counts.update(generate_secret()[len(PREFIX) : len(PREFIX) + RANDOM_LENGTH])
    total = n_secrets * RANDOM_LENGTH
    expected = total / len(ALPHABET)
    assert set(counts) == set(ALPHABET)
    chi_squared = sum((counts[c] - expected) ** 2 / expected for c in ALPHABET)
    # 61 degrees of freedom: mean 61, sd ~11; 125 is beyond p = 1e-6.
    assert chi_squared < 125, chi_squared


def test_positions_are_not_correlated_with_their_neighbours() -> None:
    """Each position, taken alone, is uniform too (a generator repeating a pattern would not be)."""
    samples = [generate_secret() for _ in range(3000)]
    for position in (len(PREFIX), len(PREFIX) + 21, len(PREFIX) + RANDOM_LENGTH - 1):
        distinct = len({s[position] for s in samples})
        assert distinct == len(ALPHABET)
        same_as_next = sum(s[position] == s[position + 1] for s in samples)
        assert same_as_next < 3000 / 62 * 2.5  # about 48 expected


def test_the_secret_carries_at_least_256_bits() -> None:
    assert RANDOM_LENGTH * math.log2(len(ALPHABET)) > 256


def test_secret_hash_is_hmac_sha256_hex_under_the_pepper() -> None:
    secret = generate_secret()
    expected = hmac.new(PEPPER, secret.encode(), hashlib.sha256).hexdigest()
    assert secret_hash(secret, PEPPER) == expected
    assert len(expected) == 64
    assert secret_hash(secret, b"q" * 32) != expected


def test_secret_hash_refuses_an_empty_pepper() -> None:
    with pytest.raises(ValueError, match="pepper"):
        secret_hash(generate_secret(), b"")


def test_generation_uses_the_secrets_module() -> None:
    source = Path(token_secrets.__file__).read_text(encoding="utf-8")
    assert "secrets.choice" in source
    assert "import random" not in source
