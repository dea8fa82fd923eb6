"""The usage log's pure parts: its flush-interval setting and the keyed hash of unknown secrets."""

import hashlib
import hmac

import pytest

from services.auth.usage_log import PresentedHasher
from services.config import ConfigError, load_settings


def test_the_flush_interval_defaults_to_one_second_and_is_configurable() -> None:
    assert load_settings({}).usage_flush_seconds == 1.0
    assert load_settings({"TOKENLEDGER_USAGE_FLUSH_SECONDS": "0.25"}).usage_flush_seconds == 0.25


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "inf"])
def test_a_flush_interval_must_be_a_positive_number(value: str) -> None:
    with pytest.raises(ConfigError, match="TOKENLEDGER_USAGE_FLUSH_SECONDS"):
        load_settings({"TOKENLEDGER_USAGE_FLUSH_SECONDS": value})


def test_the_presented_hash_is_keyed_and_apart_from_the_secret_lookup_hash() -> None:
    pepper = b"unit-test-pepper-0123456789"
    hashed = PresentedHasher(pepper)("spat_guess")
    assert hashed == PresentedHasher(pepper)("spat_guess") and len(hashed) == 32
    assert hashed != PresentedHasher(b"another-pepper-0123456789")("spat_guess")
    assert hashed != hmac.new(pepper, b"spat_guess", hashlib.sha256).digest()
    assert b"spat_guess" not in hashed
