"""The SMB source lists folders on the fast path (``sharelift.storage.smb_fast.listing``)
against a real Samba, and lists them exactly as smbprotocol's path does.

Each test walks the same tree twice, once on each path (``SHARELIFT_SMB_FAST_READS=0``
turns the fast one off), and asks for identical entries: names (odd ones, unmapped ones,
ones Samba cannot convert), kinds, sizes, times and per-folder errors. That it is the fast
path listing is proven by making smbprotocol's listing fail whenever it is called.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.servers import prerequisites
from tests.servers.smb import SmbServer, serving_new_share

from sharelift.errors import AddressError
from sharelift.storage import retrying
from sharelift.storage.base import Entry, EntryKind
from sharelift.storage.retrying import RetryPolicy
from sharelift.storage.smb_fast import listing, wire
from sharelift.storage.smb_source import FAST_READS_ENV, SmbSource

pytestmark = [
    pytest.mark.servers,
    pytest.mark.skipif(
        not (prerequisites.available("smbd") and os.geteuid() == 0),
        reason="needs Samba's smbd and root",
    ),
]

QUICK_RETRY = RetryPolicy(first_wait=0.2, max_wait=1.0, request_time=60, file_time=120)


@pytest.fixture(scope="module")
def smb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmbServer]:
    with serving_new_share(tmp_path_factory.mktemp("smb-list-work")) as server:
        yield server


@pytest.fixture(scope="module")
def encrypted_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmbServer]:
    with serving_new_share(tmp_path_factory.mktemp("smb-list-enc"), encrypt=True) as server:
        yield server


@pytest.fixture(scope="module")
def mapping_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmbServer]:
    with serving_new_share(
        tmp_path_factory.mktemp("smb-list-map"), map_illegal_names=True
    ) as server:
        yield server


def _folder(server: SmbServer, request: pytest.FixtureRequest) -> Iterator[Path]:
    path = server.share_dir / re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir()
    yield path
    for dirpath, dirnames, _ in os.walk(path):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def folder(request: pytest.FixtureRequest, smb_server: SmbServer) -> Iterator[Path]:
    yield from _folder(smb_server, request)


@pytest.fixture
def mapped_folder(request: pytest.FixtureRequest, mapping_server: SmbServer) -> Iterator[Path]:
    yield from _folder(mapping_server, request)


@pytest.fixture
def encrypted_folder(request: pytest.FixtureRequest, encrypted_server: SmbServer) -> Iterator[Path]:
    yield from _folder(encrypted_server, request)


class _ClassicListingCalled(AssertionError):
    pass


def _refuse(*_args: object, **_kwargs: object) -> None:
    raise _ClassicListingCalled("smbprotocol's listing was used")


@pytest.fixture
def no_classic_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    """smbprotocol's listing fails if called: what lists must be the fast path."""
    monkeypatch.setattr(SmbSource, "_list_dir_once", _refuse)
    monkeypatch.setattr(SmbSource, "_list_dir_long", _refuse)


def walk_fast(server: SmbServer, path: str) -> list[Entry]:
    with SmbSource(server.source_address(path=path)) as src:
        entries = list(src.walk())
        assert src.read_path.startswith("fast")
        return entries


def walk_classic(server: SmbServer, path: str, monkeypatch: pytest.MonkeyPatch) -> list[Entry]:
    with monkeypatch.context() as patch:
        patch.setenv(FAST_READS_ENV, "0")
        with SmbSource(server.source_address(path=path)) as src:
            return list(src.walk())


def both_walks(
    server: SmbServer, path: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[Entry], list[Entry]]:
    classic = walk_classic(server, path, monkeypatch)
    with monkeypatch.context() as patch:
        patch.setattr(SmbSource, "_list_dir_once", _refuse)
        patch.setattr(SmbSource, "_list_dir_long", _refuse)
        fast = walk_fast(server, path)
    return fast, classic


def write(path: Path, data: bytes = b"x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def hostile_tree(root: Path) -> None:
    """Names and kinds of every awkward sort the hostile-tree test uses, and more."""
    for name in [
        "plain.txt",
        "with space/file one.txt",
        "unicode/êé/Hello, 世界.txt",
        "hash#%+;.txt",
        "tab\tname.txt",
        "new\nline.txt",
        "q?mark.txt",
        'star*"quote".txt',
        "colon:name.txt",
        "separator\u2028line.txt",
        "emoji 😀.txt",
        "n" * 251 + ".txt",
        "é" * 127 + "x",
        ".hidden-dot-file",
        "Case.txt",
        "case.txt",
        "empty-file",
    ]:
        write(
            root / name,
            name.encode("utf-8", "surrogateescape") * 3 if name != "empty-file" else b"",
        )
    (root / "empty-folder").mkdir()
    for raw in [b"latin\xe9.txt", b"sjis\x82\xa0.txt", b"bad\xff-dir/inner.txt"]:
        target = os.path.join(os.fsencode(root), raw)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(b"not utf-8")
    os.mkfifo(root / "a-fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "a-socket"))
    sock.close()
    (root / "link-to-file").symlink_to("plain.txt")
    (root / "link-to-folder").symlink_to("unicode")
    (root / "dangling").symlink_to("nowhere")
    write(root / "locked/secret.txt")
    (root / "locked").chmod(0o000)
    write(root / "unsearchable/hidden.txt")
    (root / "unsearchable").chmod(0o644)
    write(root / "deep/a/b/c/d/e/f.txt", b"deep")
    os.utime(root / "plain.txt", (0, -31_536_000))  # before 1970
    os.utime(root / "Case.txt", (0, 4_102_444_805))  # after 2100


# -- the fast path lists, and lists as smbprotocol's path does ------------------------


def test_a_hostile_tree_lists_identically_on_both_paths(
    smb_server: SmbServer, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hostile_tree(folder)
    fast, classic = both_walks(smb_server, folder.name, monkeypatch)
    assert fast == classic
    paths = {e.path for e in fast}
    assert "deep/a/b/c/d/e/f.txt" in paths
    assert "q?mark.txt" in paths  # unmapped: listed with an error saying why
    errors = {e.path: e.error for e in fast if e.error}
    assert "which SMB cannot carry" in (errors["q?mark.txt"] or "")
    assert errors["locked"] == "cannot list folder: permission denied"
    assert "cannot enter folder" in (errors["unsearchable"] or "")


def test_names_the_server_maps_list_identically_on_both_paths(
    mapping_server: SmbServer, mapped_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ["q?mark.txt", 'star*"quote".txt', "colon:name.txt", "back\\slash.txt"]
    for name in names:
        write(mapped_folder / name)
    fast, classic = both_walks(mapping_server, mapped_folder.name, monkeypatch)
    assert fast == classic
    assert [e.path for e in fast] == sorted(names)
    assert all(e.error is None for e in fast)


def test_a_folder_larger_than_one_compound_lists_every_entry_on_the_fast_path(
    smb_server: SmbServer, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each entry takes about 190 bytes: 6,000 fill more than the first compound's two
    # 256 KiB answers, so the folder is opened again and queried until the end.
    names = [f"{i:05d}-" + "long-name-" * 5 for i in range(6000)]
    big = folder / "big"
    big.mkdir()
    for name in names:
        (big / name).touch()
    write(folder / "after.txt")
    fast, classic = both_walks(smb_server, folder.name, monkeypatch)
    assert fast == classic
    assert [e.path for e in fast] == ["after.txt", "big", *(f"big/{n}" for n in names)]


def test_an_encrypted_share_lists_on_the_fast_path(
    encrypted_server: SmbServer, encrypted_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hostile_tree(encrypted_folder)
    for i in range(6000):  # more than the first compound's answers hold
        (encrypted_folder / "with space" / f"many-{i:04d}-{'x' * 40}.txt").touch()
    classic = walk_classic(encrypted_server, encrypted_folder.name, monkeypatch)
    with monkeypatch.context() as patch:
        patch.setattr(SmbSource, "_list_dir_once", _refuse)
        patch.setattr(SmbSource, "_list_dir_long", _refuse)
        with SmbSource(encrypted_server.source_address(path=encrypted_folder.name)) as src:
            fast = list(src.walk())
            assert src.read_path == "fast (encrypted)"
    assert fast == classic
    assert len(fast) > 6000


def test_a_missing_top_folder_fails_the_walk_alike_on_both_paths(
    smb_server: SmbServer, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(folder / "file.txt")
    results = []
    for env in ("1", "0"):
        monkeypatch.setenv(FAST_READS_ENV, env)
        with SmbSource(smb_server.source_address(path=folder.name)) as src:
            results.append(list(src.walk("nope")) + list(src.walk("file.txt")))
    assert results[0] == results[1]
    assert results[0][0].error == "cannot list folder: it no longer exists"


def test_listing_with_smbprotocol_when_the_fast_path_is_turned_off(
    smb_server: SmbServer, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(folder / "a/b.txt")
    monkeypatch.setenv(FAST_READS_ENV, "0")
    monkeypatch.setattr(listing, "list_folder", _refuse)
    with SmbSource(smb_server.source_address(path=folder.name)) as src:
        assert [e.path for e in src.walk()] == ["a", "a/b.txt"]


# -- the server restarts mid-walk -------------------------------------------------------


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[SmbServer]:
    with serving_new_share(tmp_path / "work") as server:
        yield server


@pytest.mark.parametrize("fast", ["1", "0"], ids=["fast", "smbprotocol"])
def test_a_walk_cut_by_a_server_restart_reconnects_and_lists_every_folder(
    own_server: SmbServer,
    fast: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="sharelift.storage.retrying")
    monkeypatch.setenv(FAST_READS_ENV, fast)
    expected = []
    for d in range(6):
        expected.append(f"d{d}")
        for f in range(20):
            write(own_server.share_dir / f"d{d}" / f"f{f:02d}.txt")
            expected.append(f"d{d}/f{f:02d}.txt")
    with SmbSource(own_server.source_address()) as src, retrying.file_scope(QUICK_RETRY):
        walk = src.walk()
        seen = [next(walk) for _ in range(25)]  # d0 and its files, d1 listed
        own_server.restart(downtime=1.0)
        seen += list(walk)
        if fast == "1":
            assert src.read_path.startswith("fast")
    assert [e.path for e in seen] == expected
    assert all(e.error is None for e in seen)
    if fast == "1":  # (smbclient finds its dead connection and reconnects by itself)
        assert "listing of 'd2' failed" in caplog.text  # the restart cut a fast listing


@pytest.mark.parametrize("fast", ["1", "0"], ids=["fast", "smbprotocol"])
def test_a_server_gone_for_good_ends_the_walk_after_the_retry_time(
    own_server: SmbServer, fast: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not one "cannot list" entry per folder left, each after the whole retry time.
    monkeypatch.setenv(FAST_READS_ENV, fast)
    for d in range(6):
        for f in range(20):
            write(own_server.share_dir / f"d{d}" / f"f{f:02d}.txt")
    brief = RetryPolicy(first_wait=0.1, max_wait=0.2, request_time=1, file_time=1)
    with SmbSource(own_server.source_address()) as src, retrying.file_scope(brief):
        walk = src.walk()
        seen = [next(walk) for _ in range(25)]  # d0 and its files, d1 listed
        own_server.stop()
        with pytest.raises(AddressError, match="lost the connection .* while listing 'd"):
            seen += list(walk)
    assert all(e.error is None for e in seen)


# -- the wire format ------------------------------------------------------------------


def test_query_directory_request_packs_as_smbprotocol_packs_it() -> None:
    from smbprotocol.file_info import FileInformationClass
    from smbprotocol.open import QueryDirectoryFlags, SMB2QueryDirectoryRequest

    file_id = bytes(range(16))
    query = SMB2QueryDirectoryRequest()
    query["file_information_class"] = FileInformationClass.FILE_ID_FULL_DIRECTORY_INFORMATION
    query["flags"] = QueryDirectoryFlags.SMB2_RESTART_SCANS
    query["file_index"] = 0
    query["file_id"] = file_id
    query["output_buffer_length"] = 65536
    query["buffer"] = "*".encode("utf-16-le")
    ours = wire.query_directory_body(file_id, 0x26, wire.QUERY_RESTART_SCANS, "*", 65536)
    assert ours == query.pack()


def test_query_directory_answer_gives_the_buffer_at_its_offset() -> None:
    entries = b"entries-bytes"
    body = struct.pack("<HHI", 9, wire.HEADER_SIZE + 8, len(entries)) + entries
    message = memoryview(b"\0" * wire.HEADER_SIZE + body)
    assert wire.query_directory_answer(message) == entries


def test_empty_kinds_are_what_samba_hides(
    smb_server: SmbServer, folder: Path, no_classic_listing: None
) -> None:
    hostile_tree(folder)
    with SmbSource(smb_server.source_address(path=folder.name)) as src:
        kinds = {e.kind for e in src.walk()}
    assert kinds == {EntryKind.FILE, EntryKind.DIR}  # links, fifos, sockets: hidden
