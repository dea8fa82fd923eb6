"""Names the runtime derives: physical tables, views, advisory-lock keys, and rendered SQL.

A logical table ``accounts`` is stored in ``rm_accounts_v<version>`` (the first build of a version) or
``rm_accounts_v<version>_r<generation>`` (a rebuild of the same version), and read through the view
``rm_accounts``. Placeholders ``{accounts}`` in a projection's SQL are replaced by the physical name;
nothing else in the SQL is touched (braces around any other word, as in an array literal ``'{a}'``,
are left alone).
"""

import re
import zlib
from collections.abc import Callable, Mapping

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")

LOCK_CLASS_RUNNER = 0x746C7072  # "tlpr": one active runner per projection
LOCK_CLASS_BUILD = 0x746C7062  # "tlpb": one build (start-up or rebuild) per projection at a time
LOCK_CLASS_SCHEMA = 0x746C7073  # "tlps": creating the bookkeeping tables


def check_identifier(name: str) -> str:
    if not _IDENTIFIER.fullmatch(name) or len(name) > 40:
        raise ValueError(f"{name!r} is not a plain lower-case identifier of at most 40 characters")
    return name


def view_name(table: str) -> str:
    return f"rm_{check_identifier(table)}"


def physical_name(table: str, version: int, generation: int) -> str:
    base = f"rm_{check_identifier(table)}_v{version}"
    return base if generation == 0 else f"{base}_r{generation}"


def physical_pattern(table: str) -> str:
    """A POSIX regular expression matching every physical table of ``table``, of any version."""
    return f"^rm_{check_identifier(table)}_v[0-9]+(_r[0-9]+)?$"


def lock_key(name: str) -> int:
    """A stable signed 32-bit key for ``name`` (the second half of a two-key advisory lock)."""
    key = zlib.crc32(name.encode())
    return key - (1 << 32) if key >= (1 << 31) else key


def renderer(tables: Mapping[str, str]) -> Callable[[str], str]:
    """Replaces ``{logical}`` placeholders with physical names; caches per SQL text."""
    cache: dict[str, str] = {}

    def substitute(match: re.Match[str]) -> str:
        return tables.get(match.group(1), match.group(0))

    def render(sql: str) -> str:
        rendered = cache.get(sql)
        if rendered is None:
            rendered = cache[sql] = _PLACEHOLDER.sub(substitute, sql)
        return rendered

    return render
