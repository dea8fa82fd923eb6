"""Settings, read once from the environment (12-factor). README lists every variable."""

import os
import urllib.parse
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
    rotation_period: timedelta | None = None
    """Age of a secret after which the scheduler records ``token.rotation_due`` (None: never),
    unless the token's account sets its own period."""
    expiry_warning_leads: tuple[timedelta, ...] = (timedelta(days=7), timedelta(days=1))
    """How long before ``expires_at`` the scheduler records ``token.expiring_soon``, longest first."""
    kafka_tokens_topic: str = "tokenledger.tokens"
    kafka_accounts_topic: str = "tokenledger.accounts"
    kafka_topic_partitions: int = 6
    kafka_replication_factor: int | None = None
    """For the topics the relay creates; None: 3, or the number of brokers when there are fewer."""
    usage_flush_seconds: float = 1.0
    """How often the usage log (every token verification) is stored: what a crash may lose."""
    metrics_access: str = "token"
    """Who may read ``GET /metrics``: ``public`` (anyone), or ``token`` (a bearer token with the
    ``metrics:read`` right: the Metrics or Admin Identity role, within the token's scopes)."""
    console_idle: timedelta = timedelta(minutes=30)
    """A web console session unused this long is over."""
    console_lifetime: timedelta = timedelta(hours=12)
    """A web console session is over this long after sign-in, however much it is used."""
    embedded_database: bool = False
    """``database_url`` names this node's embedded PostgreSQL, which its supervisor started (not
    an external database that other nodes may share)."""
    revocation_secret: str | None = None
    """The shared secret of the leaked-token revocation endpoints (``/v1/...``); None: they are off."""
    max_federated_token_lifetime: timedelta = timedelta(hours=1)
    """The longest lifetime of a token obtained by an OIDC token exchange (at most one day)."""
    max_id_token_age: timedelta = timedelta(hours=1)
    """The oldest ``iat`` of an id-token the exchange accepts (with its 60 s leeway): one hour
    covers GitHub Actions' id-tokens (minutes old when used) and Kubernetes' projected tokens, which
    the kubelet refreshes at 80% of their ``expirationSeconds`` (48 minutes for the default hour)."""


WORKERS = frozenset({"projector", "scheduler", "relay"})
METRICS_ACCESS = ("public", "token")


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


def _metrics_access(value: str) -> str:
    if value not in METRICS_ACCESS:
        raise ConfigError(f"TOKENLEDGER_METRICS: expected public or token, got {value!r}")
    return value


def _positive_int(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{name}: must be positive, got {number}")
    return number


def _positive_float(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name}: expected a number, got {value!r}") from None
    if not number > 0 or number == float("inf"):
        raise ConfigError(f"{name}: must be a positive finite number, got {value!r}")
    return number


def _revocation_secret(value: str | None) -> str | None:
    if value is not None and len(value) < 32:
        raise ConfigError("TOKENLEDGER_REVOCATION_SECRET: must be at least 32 characters")
    return value


def _minute_to_day(name: str, value: str) -> timedelta:
    """A number of seconds from 60 to 86400."""
    seconds = _positive_int(name, value)
    if not 60 <= seconds <= 86400:
        raise ConfigError(f"{name}: must be 60 to 86400 seconds, got {seconds}")
    return timedelta(seconds=seconds)


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _durations(name: str, value: str) -> tuple[timedelta, ...]:
    """A comma-separated list such as ``7d,1d,12h`` (units s, m, h, d), longest first."""
    durations: set[timedelta] = set()
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        unit = _DURATION_UNITS.get(part[-1])
        if unit is None or not part[:-1].isdigit() or int(part[:-1]) == 0:
            raise ConfigError(f"{name}: expected positive durations such as 7d,1d,12h; got {part!r}")
        durations.add(timedelta(seconds=int(part[:-1]) * unit))
    return tuple(sorted(durations, reverse=True))


DATABASE_URL_FORM = "postgresql://user:password@host:5432/database"


def _database_url(value: str | None) -> str | None:
    """A PostgreSQL URL, checked here so a typo is one line, not a driver's traceback. The value is
    never repeated in the message: it may hold a password."""
    if not value:
        return None
    try:
        parsed = urllib.parse.urlsplit(value)
        port = parsed.port
    except ValueError:
        raise ConfigError(f"DATABASE_URL is not a URL such as {DATABASE_URL_FORM} (check the port)") from None
    if parsed.scheme not in ("postgresql", "postgres"):
        shown = f"{parsed.scheme}://" if parsed.scheme else "no scheme"
        raise ConfigError(
            f"DATABASE_URL must start with postgresql:// (got {shown}), e.g. {DATABASE_URL_FORM}"
        )
    if port == 0:
        raise ConfigError("DATABASE_URL: port 0 is not a port")
    return value


def data_dir_of(environ: Mapping[str, str] = os.environ) -> Path:
    """``TOKENLEDGER_DATA_DIR``, else the per-user data directory (``~/.local/share/tokenledger``)."""
    return Path(environ.get("TOKENLEDGER_DATA_DIR") or platformdirs.user_data_path("tokenledger"))


def load_settings(environ: Mapping[str, str] = os.environ) -> Settings:
    data_dir = data_dir_of(environ)
    return Settings(
        database_url=_database_url(environ.get("DATABASE_URL")),
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
        rotation_period=timedelta(
            days=_positive_int(
                "TOKENLEDGER_ROTATION_PERIOD_DAYS", environ["TOKENLEDGER_ROTATION_PERIOD_DAYS"]
            )
        )
        if environ.get("TOKENLEDGER_ROTATION_PERIOD_DAYS")
        else None,
        expiry_warning_leads=_durations(
            "TOKENLEDGER_EXPIRY_WARNING_LEADS", environ.get("TOKENLEDGER_EXPIRY_WARNING_LEADS", "7d,1d")
        ),
        kafka_tokens_topic=environ.get("TOKENLEDGER_KAFKA_TOKENS_TOPIC") or "tokenledger.tokens",
        kafka_accounts_topic=environ.get("TOKENLEDGER_KAFKA_ACCOUNTS_TOPIC") or "tokenledger.accounts",
        kafka_topic_partitions=_positive_int(
            "TOKENLEDGER_KAFKA_TOPIC_PARTITIONS", environ.get("TOKENLEDGER_KAFKA_TOPIC_PARTITIONS") or "6"
        ),
        kafka_replication_factor=_positive_int(
            "TOKENLEDGER_KAFKA_REPLICATION_FACTOR", environ["TOKENLEDGER_KAFKA_REPLICATION_FACTOR"]
        )
        if environ.get("TOKENLEDGER_KAFKA_REPLICATION_FACTOR")
        else None,
        usage_flush_seconds=_positive_float(
            "TOKENLEDGER_USAGE_FLUSH_SECONDS", environ.get("TOKENLEDGER_USAGE_FLUSH_SECONDS") or "1"
        ),
        metrics_access=_metrics_access(environ.get("TOKENLEDGER_METRICS") or "token"),
        console_idle=timedelta(
            minutes=_positive_int(
                "TOKENLEDGER_CONSOLE_IDLE_MINUTES", environ.get("TOKENLEDGER_CONSOLE_IDLE_MINUTES") or "30"
            )
        ),
        console_lifetime=timedelta(
            hours=_positive_int(
                "TOKENLEDGER_CONSOLE_SESSION_HOURS", environ.get("TOKENLEDGER_CONSOLE_SESSION_HOURS") or "12"
            )
        ),
        revocation_secret=_revocation_secret(environ.get("TOKENLEDGER_REVOCATION_SECRET") or None),
        max_federated_token_lifetime=_minute_to_day(
            "TOKENLEDGER_MAX_FEDERATED_TOKEN_LIFETIME_SECONDS",
            environ.get("TOKENLEDGER_MAX_FEDERATED_TOKEN_LIFETIME_SECONDS") or "3600",
        ),
        max_id_token_age=_minute_to_day(
            "TOKENLEDGER_MAX_ID_TOKEN_AGE_SECONDS",
            environ.get("TOKENLEDGER_MAX_ID_TOKEN_AGE_SECONDS") or "3600",
        ),
    )
