"""Where the pepper comes from: the environment (long enough), else a private file made once."""

import base64
import logging
import os
import stat
import threading
from pathlib import Path

import msgspec
import pytest

from services.config import ConfigError, Settings, load_settings
from services.pepper import PEPPER_BYTES, load_pepper


def settings(tmp_path: Path, **env: str) -> Settings:
    return load_settings({"TOKENLEDGER_DATA_DIR": str(tmp_path), **env})


def test_the_environment_pepper_is_used_as_its_utf8_bytes(tmp_path: Path) -> None:
    value = "x" * 31 + "é"
    assert load_pepper(settings(tmp_path, TOKENLEDGER_PEPPER=value)) == value.encode()
    assert not (tmp_path / "pepper").exists()


def test_a_short_environment_pepper_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 32") as caught:
        load_pepper(settings(tmp_path, TOKENLEDGER_PEPPER="s3cr3t-but-short"))
    assert "s3cr3t" not in str(caught.value)


def test_without_one_a_private_file_is_created_and_then_reused(tmp_path: Path) -> None:
    first = load_pepper(settings(tmp_path))
    path = tmp_path / "pepper"
    assert len(first) == PEPPER_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert base64.b64decode(path.read_bytes().strip()) == first
    assert load_pepper(settings(tmp_path)) == first
    assert [p.name for p in tmp_path.iterdir()] == ["pepper"]  # no temporary left behind


def test_the_data_directory_is_created_if_missing(tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b"
    assert len(load_pepper(settings(nested))) == PEPPER_BYTES
    assert (nested / "pepper").exists()


def test_concurrent_first_uses_agree_on_one_pepper(tmp_path: Path) -> None:
    results: list[bytes] = []
    barrier = threading.Barrier(8)

    def load() -> None:
        barrier.wait()
        results.append(load_pepper(settings(tmp_path)))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and len(set(results)) == 1


def test_a_corrupt_or_short_pepper_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "pepper"
    path.write_text("not base64 at all!!\n")
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError, match="base64"):
        load_pepper(settings(tmp_path))
    path.write_bytes(base64.b64encode(b"short") + b"\n")
    with pytest.raises(ConfigError, match="bytes"):
        load_pepper(settings(tmp_path))
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError):
        load_pepper(settings(tmp_path))


def test_an_external_database_with_a_file_pepper_warns_without_logging_the_pepper(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="services.pepper"):
        pepper = load_pepper(settings(tmp_path, DATABASE_URL="postgresql://db.example/tokenledger"))
    assert any("TOKENLEDGER_PEPPER" in r.getMessage() for r in caplog.records)
    text = (tmp_path / "pepper").read_text().strip()
    for record in caplog.records:
        assert text not in record.getMessage()
        assert pepper.hex() not in record.getMessage()


def test_an_embedded_database_with_a_file_pepper_does_not_warn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="services.pepper"):
        load_pepper(settings(tmp_path))
        # as the processes of `serve --processes N` see it: the supervisor started it, they connect
        supervised = settings(tmp_path, DATABASE_URL="postgresql://127.0.0.1:5433/tokenledger")
        load_pepper(msgspec.structs.replace(supervised, embedded_database=True))
    assert not caplog.records


def test_an_environment_pepper_is_never_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    value = "environment-pepper-" + "z" * 20
    with caplog.at_level(logging.DEBUG):
        load_pepper(settings(tmp_path, TOKENLEDGER_PEPPER=value, DATABASE_URL="postgresql://x/y"))
    assert all(value not in r.getMessage() for r in caplog.records)


def test_a_pepper_file_readable_by_others_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    load_pepper(settings(tmp_path))
    os.chmod(tmp_path / "pepper", 0o644)
    with caplog.at_level(logging.WARNING, logger="services.pepper"):
        load_pepper(settings(tmp_path))
    assert any("other users" in r.getMessage() for r in caplog.records)
