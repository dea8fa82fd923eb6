"""``tokenledger scan PATH...``: finds ``spat_`` tokens in files, offline, and tells which are real.

A candidate is ``spat_`` and 50 base62 characters standing alone (no letter, digit or ``_`` right
before it, no letter or digit right after). It is *valid* when its checksum holds
(``services.tokens.secrets.is_well_formed``): what a tokenledger deployment made, or a one in a
14.8 million chance look-alike; no database and no pepper are needed, so it runs anywhere (a
pre-commit hook, CI, an incident responder's laptop). A finding is printed with the token shortened
to its first 9 and last 4 characters: the scan never repeats a secret in full. Directories are
walked (``.git`` skipped, symlinks not followed); files over ``MAX_FILE_BYTES`` are skipped.
"""

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgspec

from services.tokens.secrets import PREFIX, SECRET_LENGTH, is_well_formed

CANDIDATE = re.compile(
    rb"(?<![0-9A-Za-z_])spat_[0-9A-Za-z]{%d}(?![0-9A-Za-z])" % (SECRET_LENGTH - len(PREFIX))
)
MAX_FILE_BYTES = 64 * 1024 * 1024
SKIPPED_DIRECTORIES = frozenset({".git"})


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    path: Path
    line: int
    column: int
    shown: str
    """The token shortened (``spat_abcd…wxyz``)."""
    valid: bool


def _files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            for root, directories, names in os.walk(path):
                directories[:] = sorted(d for d in directories if d not in SKIPPED_DIRECTORIES)
                yield from (Path(root) / name for name in sorted(names))
        else:
            yield path


def scan_file(path: Path) -> list[Finding]:
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            return []
        data = path.read_bytes()
    except OSError:
        return []
    findings = []
    for match in CANDIDATE.finditer(data):
        token = match.group().decode("ascii")
        line = data.count(b"\n", 0, match.start()) + 1
        column = match.start() - (data.rfind(b"\n", 0, match.start()) + 1) + 1
        shown = f"{token[:9]}…{token[-4:]}"
        findings.append(
            Finding(path=path, line=line, column=column, shown=shown, valid=is_well_formed(token))
        )
    return findings


def scan(paths: Iterable[Path]) -> Iterator[Finding]:
    for path in _files(paths):
        yield from scan_file(path)
