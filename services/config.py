"""Settings, read once from the environment (12-factor). README lists every variable."""

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

import msgspec
import platformdirs


class ConfigError(ValueError):
    """An environment variable holds a value the service cannot use."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str | None
    data_dir: Path
    kafka_bootstrap_servers: str | None
    pepper: str | None
    workers: frozenset[str]
    max_token_lifetime: timedelta
    allow_non_expiring_tokens: bool
    deployment_uri: str
    role_catalogue: Path | None


WORKERS = frozenset({"projector", "scheduler", "relay"})


def _workers(value: str) -> frozenset[str]:
    if value in ("", "all"):
        return WORKERS
    if value == "none":
        return frozenset()
    chosen = frozenset(part.strip() for part in value.split(",") if part.strip())
    unknown = chosen - WORKERS
    if unknown:
        raise ConfigError(
            f"TOKENLEDGER_WORKERS: unknown worker(s) {sorted(unknown)}; known: {sorted(WORKERS)}"
        )
    return chosen


def _bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected true or false, got {value!r}")


def _positive_int(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{name}: must be positive, got {number}")
    return number


def load_settings(environ: Mapping[str, str] = os.environ) -> Settings:
    data_dir = Path(environ.get("TOKENLEDGER_DATA_DIR") or platformdirs.user_data_path("tokenledger"))
    return Settings(
        database_url=environ.get("DATABASE_URL") or None,
        data_dir=data_dir,
        kafka_bootstrap_servers=environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
        pepper=environ.get("TOKENLEDGER_PEPPER") or None,
        workers=_workers(environ.get("TOKENLEDGER_WORKERS", "all")),
        max_token_lifetime=timedelta(
            days=_positive_int(
                "TOKENLEDGER_MAX_TOKEN_LIFETIME_DAYS",
                environ.get("TOKENLEDGER_MAX_TOKEN_LIFETIME_DAYS", "365"),
            )
        ),
        allow_non_expiring_tokens=_bool(
            "TOKENLEDGER_ALLOW_NON_EXPIRING_TOKENS",
            environ.get("TOKENLEDGER_ALLOW_NON_EXPIRING_TOKENS", "false"),
        ),
        deployment_uri=environ.get("TOKENLEDGER_DEPLOYMENT_URI", "urn:tokenledger:local"),
        role_catalogue=Path(environ["TOKENLEDGER_ROLE_CATALOGUE"])
        if environ.get("TOKENLEDGER_ROLE_CATALOGUE")
        else None,
    )
