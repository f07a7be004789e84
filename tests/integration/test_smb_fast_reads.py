"""The SMB source's fast read path (``sharelift.storage.smb_fast``) against a real Samba.

smbprotocol sets the session up; the fast path then reads over the same connection with
its own compounds. These tests prove it is the path actually reading (``read_path``), that
it gives the same bytes, the same per-file errors and the same torn-read evidence as
smbprotocol's path, on a signed and on an encrypted share, and across a server restart.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.servers import prerequisites
from tests.servers.smb import SmbServer, serving_new_share

from sharelift.errors import (
    FileError,
    NotAFile,
    SourceFileChanged,
    SourceFileNotFound,
    SourceFilePermissionDenied,
)
from sharelift.storage import retrying
from sharelift.storage.retrying import RetryPolicy
from sharelift.storage.smb_fast.channel import ConnectionLost, StatusError
from sharelift.storage.smb_source import FAST_READS_ENV, SmbSource, _transient

pytestmark = [
    pytest.mark.servers,
    pytest.mark.skipif(
        not (prerequisites.available("smbd") and os.geteuid() == 0),
        reason="needs Samba's smbd and root",
    ),
]

MiB = 1024 * 1024
QUICK_RETRY = RetryPolicy(first_wait=0.2, max_wait=1.0, request_time=60, file_time=120)


@pytest.fixture(scope="module")
def smb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmbServer]:
    with serving_new_share(tmp_path_factory.mktemp("smb-fast-work")) as server:
        yield server


@pytest.fixture(scope="module")
def encrypted_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmbServer]:
    with serving_new_share(tmp_path_factory.mktemp("smb-enc-work"), encrypt=True) as server:
        yield server


def _folder(server: SmbServer, request: pytest.FixtureRequest) -> Path:
    path = server.share_dir / re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir()
    return path


@pytest.fixture
def folder(request: pytest.FixtureRequest, smb_server: SmbServer) -> Path:
    return _folder(smb_server, request)


@pytest.fixture
def source(smb_server: SmbServer, folder: Path) -> Iterator[SmbSource]:
    src = SmbSource(smb_server.source_address(path=folder.name))
    yield src
    src.close()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def read_all(src: SmbSource, path: str, size: int = MiB) -> bytes:
    with src.open(path) as stream:
        parts = []
        while chunk := stream.read(size):
            parts.append(chunk)
    return b"".join(parts)


def small_files(folder: Path, count: int) -> dict[str, bytes]:
    files = {f"d{i % 4}/f{i:04d}.bin": os.urandom((i * 997) % 70_000) for i in range(count)}
    for name, data in files.items():
        write(folder / name, data)
    return files


def copy_like_the_engine(src: SmbSource, names: list[str], ahead: int = 16) -> dict[str, bytes]:
    """Read ``names`` as the copier does: announcing the next ones before each open."""
    got: dict[str, bytes] = {}
    for i, name in enumerate(names):
        src.prefetch(names[i + 1 : i + 1 + ahead])
        got[name] = read_all(src, name)
    return got


# -- it is the fast path that reads ----------------------------------------------------


def test_many_small_files_are_read_byte_identical_on_the_fast_path(
    source: SmbSource, folder: Path
) -> None:
    files = small_files(folder, 300)
    assert copy_like_the_engine(source, sorted(files)) == files
    assert source.read_path.startswith("fast (signed")


def test_the_choice_of_path_is_logged_at_debug(
    source: SmbSource, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(folder / "a", b"a")
    with caplog.at_level(logging.DEBUG, logger="sharelift.storage.smb_source"):
        assert read_all(source, "a") == b"a"
    assert any("SMB fast read path on" in r.getMessage() for r in caplog.records)


def test_turned_off_the_smbprotocol_path_reads_and_says_why(
    smb_server: SmbServer, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAST_READS_ENV, "0")
    write(folder / "a", b"classic")
    with SmbSource(smb_server.source_address(path=folder.name)) as src:
        src.prefetch(["a"])
        assert read_all(src, "a") == b"classic"
        assert src.read_path == f"smbprotocol (turned off ({FAST_READS_ENV}=0))"


def test_a_big_file_read_with_many_credits_is_byte_identical(
    source: SmbSource, folder: Path
) -> None:
    data = os.urandom(40 * MiB + 12345)  # the first MiB, then 1 MiB reads 8 in flight
    write(folder / "big.bin", data)
    with source.open("big.bin") as stream:
        parts = []
        while chunk := stream.read(MiB):
            parts.append(chunk)
        after = source.fingerprint(stream, "big.bin")
        before = source.opened(stream)
    assert b"".join(parts) == data
    assert before is not None and not after.differs(before)
    assert after.size == len(data)


def test_reads_of_odd_sizes_return_the_whole_file(source: SmbSource, folder: Path) -> None:
    data = os.urandom(3 * MiB + 7)
    write(folder / "odd.bin", data)
    assert read_all(source, "odd.bin", size=333_333) == data


# -- an encrypted share ----------------------------------------------------------------


def test_an_encrypted_share_is_read_on_the_fast_path(
    encrypted_server: SmbServer, request: pytest.FixtureRequest
) -> None:
    folder = _folder(encrypted_server, request)
    files = small_files(folder, 40)
    files["big.bin"] = write(folder / "big.bin", os.urandom(5 * MiB + 3)).read_bytes()
    with SmbSource(encrypted_server.source_address(path=folder.name)) as src:
        assert copy_like_the_engine(src, sorted(files)) == files
        assert src.read_path == "fast (encrypted)"
        with pytest.raises(SourceFileNotFound):
            src.open("missing")


# -- a file that changes while it is read ----------------------------------------------


def test_a_file_rewritten_between_its_first_and_its_later_reads_is_detected(
    source: SmbSource, folder: Path
) -> None:
    target = write(folder / "moving.bin", os.urandom(3 * MiB))
    with source.open("moving.bin") as stream:
        assert len(stream.read(MiB)) == MiB  # came with the open
        target.write_bytes(os.urandom(3 * MiB))
        with pytest.raises(SourceFileChanged):
            stream.read(MiB)


def test_a_file_changed_after_its_last_byte_was_read_shows_in_the_fingerprint(
    source: SmbSource, folder: Path
) -> None:
    target = write(folder / "late.bin", os.urandom(2 * MiB))
    with source.open("late.bin") as stream:
        assert len(stream.read(MiB)) == MiB
        assert len(stream.read(MiB)) == MiB
        with open(target, "r+b") as f:  # same size, new bytes
            f.write(b"changed")
        os.utime(target, ns=(1_000_000_000, 1_000_000_000))
        after = source.fingerprint(stream, "late.bin")
        before = source.opened(stream)
    assert before is not None and after.differs(before)


def test_a_small_file_read_whole_takes_its_after_fingerprint_from_the_close(
    source: SmbSource, folder: Path
) -> None:
    write(folder / "s.txt", b"small")
    with source.open("s.txt") as stream:
        assert stream.read() == b"small"
        after = getattr(stream, "closed_with", None)
        assert after is not None and after.size == 5
        assert source.fingerprint(stream, "s.txt") == after


# -- errors: the same per-file reasons as smbprotocol's path ---------------------------


def test_a_missing_file_is_not_found(source: SmbSource, folder: Path) -> None:
    source.prefetch(["nope", "nope2"])
    with pytest.raises(SourceFileNotFound):
        source.open("nope")
    with pytest.raises(SourceFileNotFound):
        source.open("sub/nope")


def test_a_folder_is_not_a_file(source: SmbSource, folder: Path) -> None:
    (folder / "d").mkdir()
    with pytest.raises(NotAFile, match="is a folder"):
        source.open("d")


def test_an_unreadable_file_is_permission_denied_and_the_next_file_reads(
    source: SmbSource, folder: Path
) -> None:
    write(folder / "secret", b"s").chmod(0o000)
    write(folder / "open", b"o")
    source.prefetch(["secret", "open"])
    with pytest.raises(SourceFilePermissionDenied):
        source.open("secret")
    assert read_all(source, "open") == b"o"


def test_a_file_held_exclusively_by_another_client_is_a_sharing_violation(
    smb_server: SmbServer, source: SmbSource, folder: Path
) -> None:
    import smbclient

    write(folder / "held", b"h")
    cache: dict[str, object] = {}
    unc = rf"\\{smb_server.host}\{smb_server.share}\{folder.name}\held"
    try:
        with smbclient.open_file(
            unc,
            mode="rb",
            share_access=None,  # exclusive
            username=smb_server.username,
            password=smb_server.password.reveal(),
            port=smb_server.port,
            connection_cache=cache,
        ):
            with pytest.raises(FileError, match="sharing violation") as caught:
                source.open("held")
            assert not caught.value.transient
    finally:
        smbclient.reset_connection_cache(connection_cache=cache)
    assert read_all(source, "held") == b"h"


def test_lost_connections_and_sessions_are_transient_and_file_errors_are_not() -> None:
    assert _transient(ConnectionLost("reset"))
    assert _transient(StatusError(0xC000035C, 5))  # STATUS_NETWORK_SESSION_EXPIRED
    assert _transient(StatusError(0xC0000203, 8))  # STATUS_USER_SESSION_DELETED
    assert not _transient(StatusError(0xC0000034, 5))  # STATUS_OBJECT_NAME_NOT_FOUND
    assert not _transient(StatusError(0xC0000022, 5))  # STATUS_ACCESS_DENIED


# -- the server restarts ---------------------------------------------------------------


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[SmbServer]:
    with serving_new_share(tmp_path / "work") as server:
        yield server


def test_opens_after_a_server_restart_reconnect_and_every_file_reads(
    own_server: SmbServer,
) -> None:
    files = small_files(own_server.share_dir, 60)
    names = sorted(files)
    got: dict[str, bytes] = {}
    with SmbSource(own_server.source_address()) as src, retrying.file_scope(QUICK_RETRY):
        for i, name in enumerate(names):
            if i == 30:  # prefetched compounds are in flight on the connection killed
                own_server.restart(downtime=1.0)
            src.prefetch(names[i + 1 : i + 17])
            got[name] = read_all(src, name)
        assert src.read_path.startswith("fast")
    assert got == files


def test_a_read_cut_by_a_restart_fails_the_file_as_transient_and_a_new_open_reads_it(
    own_server: SmbServer,
) -> None:
    data = write(own_server.share_dir / "big.bin", os.urandom(24 * MiB)).read_bytes()
    with SmbSource(own_server.source_address()) as src, retrying.file_scope(QUICK_RETRY):
        stream = src.open("big.bin")
        assert len(stream.read(MiB)) == MiB
        own_server.restart(downtime=0.5)
        with pytest.raises(FileError) as caught:
            while stream.read(MiB):
                pass
        stream.close()
        assert caught.value.transient
        assert read_all(src, "big.bin") == data
