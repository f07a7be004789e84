"""smbprotocol's per-file INFO lines reach the task log only when we log at DEBUG."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from sharelift.storage import open_source
from sharelift.storage.smb_source import FAST_READS_ENV

pytestmark = pytest.mark.servers

LIBRARY_LOGGERS = ("smbprotocol", "smbclient")


@pytest.fixture
def library_logs_unset() -> Iterator[None]:
    """The test session quiets smbprotocol globally; undo that for these tests."""
    saved = {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def copy_two_files(smb_server, folder: str) -> None:  # type: ignore[no-untyped-def]
    with open_source(smb_server.source_address(path=folder)) as source:
        for entry in source.walk():
            with source.open(entry.path) as f:
                f.read()


def library_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.split(".")[0] in LIBRARY_LOGGERS]


@pytest.fixture
def two_files(smb_server, unique_name: str) -> str:  # type: ignore[no-untyped-def]
    root = Path(smb_server.share_dir) / unique_name
    root.mkdir(mode=0o755)
    for name in ("a.txt", "b.txt"):
        (root / name).write_bytes(b"x")
        (root / name).chmod(0o644)
    return unique_name


def test_at_info_smbprotocol_writes_no_line_per_file(
    smb_server, two_files: str, library_logs_unset: None, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO)
    copy_two_files(smb_server, two_files)
    assert library_records(caplog) == []


def test_at_debug_its_lines_come_back_as_debug_records(
    smb_server,
    two_files: str,
    library_logs_unset: None,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # type: ignore[no-untyped-def]
    # smbprotocol's own path, whose opens log per file (the fast path lists and reads
    # without smbprotocol.open).
    monkeypatch.setenv(FAST_READS_ENV, "0")
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="sharelift.storage.smb_source")
    copy_two_files(smb_server, two_files)
    records = library_records(caplog)
    assert any(r.name == "smbprotocol.open" for r in records)
    assert {r.levelname for r in records} == {"DEBUG"}
