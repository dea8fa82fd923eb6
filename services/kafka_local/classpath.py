"""Resolving the Kafka broker's Java classpath with Maven, and caching it.

Owns: reading the pinned Kafka version from the packaged ``pom.xml``, running
``mvn dependency:build-classpath`` on a copy of that pom, and the on-disk cache of the
resulting classpath.

Cache layout: ``<cache root>/<kafka version>/classpath-<pom digest>.txt`` where the cache root is
``$TOKENLEDGER_KAFKA_CACHE`` if set, else ``platformdirs.user_cache_path("tokenledger") / "kafka"``
(``~/.cache/tokenledger/kafka`` on Linux). A cached classpath is reused, without calling Maven,
as long as every jar it names still exists (the jars themselves live in Maven's local repository).
The digest of the pom is part of the file name, so editing the pom invalidates the cache.

The same directory holds the broker's class-data-sharing archive (``kafka-<digest>.jsa``, see
:func:`class_data_archive`), which roughly halves the JVM's start-up time.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import platformdirs

from services.kafka_local.errors import KafkaLocalError
from services.kafka_local.process import run_tool

POM_PATH: Final = Path(__file__).with_name("pom.xml")
CACHE_ENV: Final = "TOKENLEDGER_KAFKA_CACHE"
MAVEN_TIMEOUT_S: Final = 900.0
_POM_NS: Final = "{http://maven.apache.org/POM/4.0.0}"


def pom_property(name: str, pom: Path = POM_PATH) -> str:
    """Return the value of ``<properties><name>`` in ``pom``."""
    root = ET.parse(pom).getroot()  # noqa: S314 - our own packaged file
    node = root.find(f"{_POM_NS}properties/{_POM_NS}{name}")
    if node is None or not node.text or not node.text.strip():
        raise KafkaLocalError(f"{pom} has no <properties><{name}>")
    return node.text.strip()


KAFKA_VERSION: Final = pom_property("kafka.version")


def cache_root() -> Path:
    """The directory under which classpaths are cached, one sub-directory per Kafka version."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    return platformdirs.user_cache_path("tokenledger") / "kafka"


def cache_dir(version: str = KAFKA_VERSION, root: Path | None = None) -> Path:
    """The cache directory for one Kafka version."""
    return (root if root is not None else cache_root()) / version


def _pom_digest(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()[:16]


def _read_cached(path: Path) -> list[Path] | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if not text:
        return None
    jars = [Path(entry) for entry in text.split(os.pathsep) if entry]
    if not jars or not all(jar.is_file() for jar in jars):
        return None
    return jars


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Serialise Maven runs of several processes on one cache directory."""
    with lock_path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def resolve_classpath(
    *,
    root: Path | None = None,
    pom: Path = POM_PATH,
    abort: threading.Event | None = None,
) -> list[Path]:
    """Return the broker's classpath (jar paths), from the cache or by running Maven once."""
    version = pom_property("kafka.version", pom)
    directory = cache_dir(version, root)
    directory.mkdir(parents=True, exist_ok=True)
    cached = directory / f"classpath-{_pom_digest(pom)}.txt"
    jars = _read_cached(cached)
    if jars is not None:
        return jars
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaLocalError(
            "Maven ('mvn') is not on PATH: install Maven 3 (it is needed once, to fetch the Kafka jars)"
        )
    with _exclusive(directory / ".lock"):
        jars = _read_cached(cached)  # another process may have resolved it meanwhile
        if jars is not None:
            return jars
        # Run Maven on a copy in the cache directory, so nothing is ever written next to the
        # installed package (which may be read-only).
        work_pom = directory / "pom.xml"
        shutil.copyfile(pom, work_pom)
        partial = directory / f".classpath-{os.getpid()}.tmp"
        run_tool(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(work_pom),
                "dependency:build-classpath",
                f"-Dmdep.outputFile={partial}",
                "-Dmdep.includeScope=runtime",
            ],
            what="mvn dependency:build-classpath",
            timeout_s=MAVEN_TIMEOUT_S,
            abort=abort,
            cwd=directory,
        )
        jars = _read_cached(partial)
        if jars is None:
            partial.unlink(missing_ok=True)
            raise KafkaLocalError(f"Maven wrote no usable classpath to {partial}")
        os.replace(partial, cached)
        return jars


def class_data_archive(jars: list[Path], java: str, root: Path | None = None) -> Path:
    """Where the dynamic AppCDS archive for this classpath and this Java runtime lives.

    The archive is only valid for the exact classpath and JVM build that wrote it, so both are
    part of its name. (A stale or foreign archive is not dangerous: the JVM just ignores it.)
    """
    runtime = Path(java).resolve()
    key = "\n".join([*(str(jar) for jar in jars), str(runtime), str(runtime.stat().st_mtime_ns)])
    version = pom_property("kafka.version")
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir(version, root) / f"kafka-{digest}.jsa"
