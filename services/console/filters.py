"""The templates' filters: instants shown one way everywhere (UTC, to the minute, with the exact
value in a ``<time datetime>`` attribute), a token state's badge, durations; and ``fresh_key()``,
the one-use key each rendered form carries (``services.console.context.act``)."""

import uuid
from datetime import UTC, datetime

import jinja2

_BADGES = {"ACTIVE": "ok", "EXPIRED": "warn", "REVOKED": "bad"}


def _instant(value: datetime | str | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC)


def when(value: datetime | str | None, empty: str = "—") -> str:
    moment = _instant(value)
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else empty


def iso(value: datetime | str | None) -> str:
    moment = _instant(value)
    return moment.isoformat().replace("+00:00", "Z") if moment else ""


def badge(state: str) -> str:
    return _BADGES.get(state, "muted")


def duration(seconds: int | None) -> str:
    if not seconds:
        return "—"
    days, rest = divmod(seconds, 86400)
    if days and not rest:
        return f"{days} day" + ("s" if days != 1 else "")
    hours, rest = divmod(seconds, 3600)
    if hours and not rest:
        return f"{hours} hour" + ("s" if hours != 1 else "")
    return f"{seconds} s"


def install(environment: jinja2.Environment) -> None:
    environment.filters.update({"when": when, "iso": iso, "badge": badge, "duration": duration})
    environment.globals["fresh_key"] = lambda: uuid.uuid4().hex
