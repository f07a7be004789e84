"""SmbSource against a real Samba smbd (testbed.smb.SmbServer) on 127.0.0.1.

One server per module (plus one with ``map_illegal_names=True``); every test works in a
folder of its own inside the share, named after the test. Files are made on disk by this
process (root), so the rules that matter are Samba's, enforced as the share's unix user.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.servers import prerequisites
from tests.servers.smb import SmbServer, make_share_dir

from sharelift.addresses import SourceAddress
from sharelift.errors import (
    AddressError,
    NotAFile,
    SourceFileChanged,
    SourceFileNotFound,
    SourceFilePermissionDenied,
)
from sharelift.local.ports import free_port
from sharelift.secret import Secret
from sharelift.storage import open_source
from sharelift.storage.base import Entry, EntryKind, Source
from sharelift.storage.smb_source import SmbSource

pytestmark = [
    pytest.mark.servers,
    pytest.mark.skipif(
        not (prerequisites.available("smbd") and os.geteuid() == 0),
        reason="needs Samba's smbd and root",
    ),
]

MiB = 1024 * 1024


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def share_dir() -> Iterator[Path]:
    path = make_share_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def smb_server(share_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmbServer]:
    with SmbServer(share_dir, tmp_path_factory.mktemp("smb-work")) as server:
        yield server


@pytest.fixture(scope="module")
def mapping_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmbServer]:
    share = make_share_dir()
    try:
        with SmbServer(
            share, tmp_path_factory.mktemp("smb-map-work"), map_illegal_names=True
        ) as server:
            yield server
    finally:
        shutil.rmtree(share, ignore_errors=True)


@pytest.fixture
def folder(request: pytest.FixtureRequest, smb_server: SmbServer) -> Path:
    """A fresh folder in the share for this test (its name is the test's name)."""
    path = smb_server.share_dir / re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir()
    return path


@pytest.fixture
def source(smb_server: SmbServer, folder: Path) -> Iterator[SmbSource]:
    """A source rooted at this test's folder."""
    src = SmbSource(smb_server.source_address(path=folder.name))
    yield src
    src.close()


def write(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def read_all(src: Source, path: str, size: int = MiB) -> bytes:
    with src.open(path) as stream:
        parts = []
        while chunk := stream.read(size):
            parts.append(chunk)
    return b"".join(parts)


def by_path(entries: list[Entry]) -> dict[str, Entry]:
    return {e.path: e for e in entries}


# -- check() ---------------------------------------------------------------------------


def test_check_passes_for_a_reachable_share(smb_server: SmbServer) -> None:
    with SmbSource(smb_server.source_address()) as src:
        src.check()


def test_open_source_builds_an_smb_source(smb_server: SmbServer) -> None:
    src = open_source(smb_server.source_address())
    try:
        assert isinstance(src, SmbSource)
        assert src.scheme == "smb"
        assert src.features.gil_bound is True
        assert src.features.reports_symlinks is False
        assert src.features.read_chunk_size == MiB
    finally:
        src.close()


def test_check_reports_connection_refused_on_wrong_port(smb_server: SmbServer) -> None:
    address = SourceAddress(
        name="smb-src",
        protocol="smb",
        host=smb_server.host,
        share=smb_server.share,
        port=free_port(),
        username=smb_server.username,
        password=smb_server.password,
    )
    with SmbSource(address) as src, pytest.raises(AddressError, match="connection refused") as info:
        src.check()
    assert info.value.address == "smb-src"


def test_check_reports_logon_failure_for_wrong_password(smb_server: SmbServer) -> None:
    wrong = "Wr0ng-Passw0rd-4711"
    address = SourceAddress(
        name="smb-src",
        protocol="smb",
        host=smb_server.host,
        share=smb_server.share,
        port=smb_server.port,
        username=smb_server.username,
        password=Secret(wrong),
    )
    with SmbSource(address) as src, pytest.raises(AddressError, match="wrong username or password"):
        src.check()


def test_password_never_shows_in_errors_reprs_or_logs(
    smb_server: SmbServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-Passw0rd-4712"
    right = smb_server.password.reveal()
    bad = SourceAddress(
        name="smb-src",
        protocol="smb",
        host=smb_server.host,
        share=smb_server.share,
        port=smb_server.port,
        username=smb_server.username,
        password=Secret(wrong),
    )
    with SmbSource(bad) as src:
        with pytest.raises(AddressError) as info:
            src.check()
        texts = [str(info.value), repr(info.value), repr(src), repr(bad), str(bad)]
    good = smb_server.source_address()
    with SmbSource(good) as src:
        src.check()
        list(src.walk())
        texts += [repr(src), repr(good), src.display_url("x")]
    texts.append(caplog.text)
    for text in texts:
        assert wrong not in text
        assert right not in text


def test_check_reports_missing_share(smb_server: SmbServer) -> None:
    address = SourceAddress(
        name="smb-src",
        protocol="smb",
        host=smb_server.host,
        share="no-such-share",
        port=smb_server.port,
        username=smb_server.username,
        password=smb_server.password,
    )
    with (
        SmbSource(address) as src,
        pytest.raises(AddressError, match="share 'no-such-share' does not exist"),
    ):
        src.check()


def test_check_reports_missing_sub_folder(smb_server: SmbServer) -> None:
    src = SmbSource(smb_server.source_address(path="no/such/folder"))
    try:
        with pytest.raises(
            AddressError, match="folder 'no/such/folder' in share 'data' does not exist"
        ):
            src.check()
    finally:
        src.close()


def test_check_reports_access_denied_for_unlistable_sub_folder(
    smb_server: SmbServer, folder: Path
) -> None:
    src = SmbSource(smb_server.source_address(path=folder.name))
    folder.chmod(0o000)
    try:
        with pytest.raises(AddressError, match="access denied"):
            src.check()
    finally:
        folder.chmod(0o755)
        src.close()


def test_display_url_has_no_credentials(smb_server: SmbServer) -> None:
    src = SmbSource(smb_server.source_address(path="sub/dir"))
    assert src.display_url() == "smb://127.0.0.1/data/sub/dir"
    assert src.display_url("a/b.txt") == "smb://127.0.0.1/data/sub/dir/a/b.txt"
    assert smb_server.username not in src.display_url("a")


# -- walk ------------------------------------------------------------------------------


def test_walk_sizes_and_mtimes_match_os_stat(source: SmbSource, folder: Path) -> None:
    write(folder / "a.txt", b"hello")
    write(folder / "sub" / "b.bin", os.urandom(12345))
    # A time with all nine nanosecond digits: SMB carries 100 ns, the rest is cut off.
    os.utime(folder / "a.txt", ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
    entries = by_path(list(source.walk()))
    assert set(entries) == {"a.txt", "sub", "sub/b.bin"}
    for rel in ("a.txt", "sub/b.bin", "sub"):
        st = os.stat(folder / rel)
        assert entries[rel].mtime_ns == st.st_mtime_ns // 100 * 100, rel
    assert entries["a.txt"].mtime_ns == 1_700_000_000_123_456_700
    assert entries["a.txt"].size == 5
    assert entries["sub/b.bin"].size == 12345
    assert entries["sub"].kind is EntryKind.DIR and entries["sub"].size == 0
    assert all(e.error is None for e in entries.values())


def test_walk_is_depth_first_with_names_sorted_per_folder(source: SmbSource, folder: Path) -> None:
    for rel in ("b/2", "b/1", "a", "c/z/y", "c/x", "B"):
        write(folder / rel)
    assert [e.path for e in source.walk()] == [
        "B",
        "a",
        "b",
        "b/1",
        "b/2",
        "c",
        "c/x",
        "c/z",
        "c/z/y",
    ]


def test_walk_paths_are_relative_to_the_address_sub_folder(
    smb_server: SmbServer, folder: Path
) -> None:
    write(folder / "deep" / "inner" / "f.txt")
    with SmbSource(smb_server.source_address(path=f"{folder.name}/deep")) as src:
        assert [e.path for e in src.walk()] == ["inner", "inner/f.txt"]
        assert [e.path for e in src.walk("inner")] == ["inner/f.txt"]


def test_walk_yields_empty_folder(source: SmbSource, folder: Path) -> None:
    (folder / "empty").mkdir()
    assert list(source.walk()) == [
        Entry("empty", EntryKind.DIR, mtime_ns=os.stat(folder / "empty").st_mtime_ns // 100 * 100)
    ]


def test_walk_lists_a_folder_larger_than_one_query(source: SmbSource, folder: Path) -> None:
    names = {f"{i:05d}-{'n' * 60}.txt" for i in range(2500)}  # ~0.5 MB of listing
    for name in names:
        (folder / name).write_bytes(b"")
    assert [e.path for e in source.walk()] == sorted(names)


def test_awkward_names_round_trip(source: SmbSource, folder: Path) -> None:
    deep = "/".join(f"level-{i:02d}-with-a-longish-name" for i in range(30))  # > 1,000 chars
    names = [
        "with space.txt",
        " leading space",
        "trailing dot.",
        "hash#percent%plus+amp&semi;eq=at@bang!tilde~",
        "quote's and (parens) [brackets] {braces}",
        "ünïcødé-名前-😀.txt",
        "e\u0301-nfd.txt",
        "x" * 251 + ".txt",  # 255 bytes, the longest name Linux allows
        f"{deep}/leaf file.txt",
    ]
    for i, name in enumerate(names):
        write(folder / name, f"content {i}".encode())
    entries = by_path(list(source.walk()))
    for i, name in enumerate(names):
        assert entries[name].kind is EntryKind.FILE and entries[name].error is None, name
        assert read_all(source, name) == f"content {i}".encode(), name
        assert source.stat(name).size == len(f"content {i}")


def test_name_smb_cannot_carry_is_reported_with_an_error(source: SmbSource, folder: Path) -> None:
    write(folder / "what?.txt", b"q")
    write(folder / "z-after.txt", b"z")
    entries = by_path(list(source.walk()))
    assert entries["what?.txt"].kind is EntryKind.FILE
    assert "'?'" in (entries["what?.txt"].error or "")
    assert "cannot carry" in (entries["what?.txt"].error or "")
    assert entries["z-after.txt"].error is None


def test_names_smb_cannot_carry_are_read_when_the_server_maps_them(
    mapping_server: SmbServer,
) -> None:
    names = [
        "what?.txt",
        "star*.txt",
        "co:lon",
        "pi|pe",
        "a<b>c",
        'q"q',
        "back\\slash",
        "tab\there",
    ]
    for i, name in enumerate(names):
        write(mapping_server.share_dir / "odd" / name, f"odd {i}".encode())
    with SmbSource(mapping_server.source_address(path="odd")) as src:
        entries = list(src.walk())
        assert [e.path for e in entries] == sorted(names)
        assert all(e.error is None for e in entries)
        for i, name in enumerate(names):
            assert read_all(src, name) == f"odd {i}".encode()
            assert src.stat(name).size == len(f"odd {i}")


def test_symlinks_are_neither_listed_nor_followed(source: SmbSource, folder: Path) -> None:
    # Targets outside the share that the share's user could read, were a link followed.
    elsewhere = make_share_dir()
    outside = write(elsewhere / "outside-secret.txt", b"TOP SECRET")
    outside_dir = elsewhere / "outside-dir"
    write(outside_dir / "inner-secret.txt", b"TOP SECRET TOO")
    outside_dir.chmod(0o755)
    write(folder / "real" / "file.txt", b"real")
    links = {
        "to-outside-file": outside,
        "to-outside-dir": outside_dir,
        "to-inside-file": Path("real/file.txt"),
        "to-inside-dir": Path("real"),
        "to-self": Path("."),
        "dangling": Path("nowhere"),
    }
    for name, target in links.items():
        (folder / name).symlink_to(target)
    assert [e.path for e in source.walk()] == ["real", "real/file.txt"]
    for name in links:
        with pytest.raises((SourceFileNotFound, NotAFile)):
            source.open(name)
        with pytest.raises((SourceFileNotFound, NotAFile)):
            source.stat(name)
    try:
        for path in ("to-outside-dir/inner-secret.txt", "to-inside-dir/file.txt"):
            with pytest.raises((SourceFileNotFound, NotAFile)):
                read_all(source, path)
    finally:
        shutil.rmtree(elsewhere)


def test_special_files_are_not_listed(source: SmbSource, folder: Path) -> None:
    os.mkfifo(folder / "fifo")
    write(folder / "regular", b"r")
    assert [e.path for e in source.walk()] == ["regular"]


def test_new_and_deleted_files_show_at_once(source: SmbSource, folder: Path) -> None:
    write(folder / "first", b"1")
    assert [e.path for e in source.walk()] == ["first"]
    write(folder / "second", b"22")
    (folder / "first").unlink()
    assert [(e.path, e.size) for e in source.walk()] == [("second", 2)]
    assert read_all(source, "second") == b"22"


# -- per-file errors -------------------------------------------------------------------


def test_vanished_file_raises_source_file_not_found(source: SmbSource, folder: Path) -> None:
    write(folder / "gone.txt", b"soon gone")
    assert [e.path for e in source.walk()] == ["gone.txt"]
    (folder / "gone.txt").unlink()
    with pytest.raises(SourceFileNotFound) as info:
        source.open("gone.txt")
    assert info.value.path == "gone.txt"
    with pytest.raises(SourceFileNotFound):
        source.stat("gone.txt")
    with pytest.raises(SourceFileNotFound):
        source.open("no-such-folder/gone.txt")


def test_unreadable_file_raises_permission_denied_and_walk_continues(
    source: SmbSource, folder: Path
) -> None:
    write(folder / "a-before.txt", b"a")
    locked = write(folder / "locked.txt", b"secret")
    locked.chmod(0o000)
    write(folder / "z-after.txt", b"z")
    entries = by_path(list(source.walk()))
    assert list(entries) == ["a-before.txt", "locked.txt", "z-after.txt"]
    assert entries["locked.txt"].kind is EntryKind.FILE and entries["locked.txt"].size == 6
    with pytest.raises(SourceFilePermissionDenied) as info:
        source.open("locked.txt")
    assert info.value.path == "locked.txt"
    assert source.stat("locked.txt").size == 6  # attributes stay readable
    assert read_all(source, "z-after.txt") == b"z"


def test_unlistable_folder_yields_entry_with_error_and_walk_continues(
    source: SmbSource, folder: Path
) -> None:
    write(folder / "a" / "f.txt")
    write(folder / "locked" / "hidden.txt")
    (folder / "locked").chmod(0o000)
    write(folder / "z" / "g.txt")
    try:
        entries = list(source.walk())
    finally:
        (folder / "locked").chmod(0o755)
    errors = [e for e in entries if e.error]
    assert [(e.path, e.kind) for e in errors] == [("locked", EntryKind.DIR)]
    assert "permission denied" in (errors[0].error or "")
    # The folder is yielded once, with its error (not once as a folder and again as one).
    assert [e.path for e in entries if not e.error] == ["a", "a/f.txt", "z", "z/g.txt"]


def test_walk_of_an_unlistable_top_yields_an_error_entry(source: SmbSource, folder: Path) -> None:
    write(folder / "locked" / "f.txt")
    (folder / "locked").chmod(0o000)
    try:
        entries = list(source.walk("locked"))
    finally:
        (folder / "locked").chmod(0o755)
    assert len(entries) == 1 and entries[0].path == "locked" and entries[0].error


def test_open_folder_raises_not_a_file(source: SmbSource, folder: Path) -> None:
    (folder / "dir").mkdir()
    with pytest.raises(NotAFile):
        source.open("dir")
    with pytest.raises(NotAFile):
        source.open("")


# -- reading ---------------------------------------------------------------------------


def test_large_file_reads_back_equal(source: SmbSource, folder: Path) -> None:
    data = os.urandom(20 * MiB + 12345)
    write(folder / "big.bin", data)
    assert hashlib.sha256(read_all(source, "big.bin")).digest() == hashlib.sha256(data).digest()


def test_reads_in_odd_sizes_return_the_whole_file(source: SmbSource, folder: Path) -> None:
    data = os.urandom(3 * MiB + 7)
    write(folder / "odd.bin", data)
    assert read_all(source, "odd.bin", size=100_003) == data
    with source.open("odd.bin") as stream:
        assert stream.read() == data  # read() / read(-1): everything
        assert stream.read(10) == b""


def test_zero_byte_file_reads_empty(source: SmbSource, folder: Path) -> None:
    write(folder / "empty.txt", b"")
    assert by_path(list(source.walk()))["empty.txt"].size == 0
    with source.open("empty.txt") as stream:
        assert stream.read(MiB) == b""
        assert stream.read(MiB) == b""


def test_file_replaced_while_read_raises_source_file_changed(
    source: SmbSource, folder: Path
) -> None:
    target = write(folder / "moving.bin", os.urandom(3 * MiB))
    stream = source.open("moving.bin")  # the first MiB arrives with the open
    try:
        assert len(stream.read(MiB)) == MiB
        target.write_bytes(os.urandom(2 * MiB))
        with pytest.raises(SourceFileChanged):
            stream.read(MiB)
    finally:
        stream.close()
        stream.close()  # twice is harmless


def test_stat_reports_file_and_folder(source: SmbSource, folder: Path) -> None:
    write(folder / "d" / "f.txt", b"abc")
    f = source.stat("d/f.txt")
    assert (f.path, f.kind, f.size, f.error) == ("d/f.txt", EntryKind.FILE, 3, None)
    assert f.mtime_ns == os.stat(folder / "d" / "f.txt").st_mtime_ns // 100 * 100
    d = source.stat("d")
    assert (d.kind, d.size) == (EntryKind.DIR, 0)
    assert source.stat("").kind is EntryKind.DIR


def test_close_is_safe_to_call_twice(smb_server: SmbServer) -> None:
    src = SmbSource(smb_server.source_address())
    src.check()
    src.close()
    src.close()
    src.check()  # and the source reconnects after a close
    src.close()


# -- processes -------------------------------------------------------------------------

_CHILD = """
import hashlib, pickle, sys
src = pickle.loads(sys.stdin.buffer.read())
with src.open(sys.argv[1]) as stream:
    data = b"".join(iter(lambda: stream.read(1 << 20), b""))
src.close()
print(hashlib.sha256(data).hexdigest())
"""


def test_source_pickles_into_a_child_process(source: SmbSource, folder: Path) -> None:
    data = os.urandom(MiB + 3)
    write(folder / "f.bin", data)
    list(source.walk())  # the parent holds a live connection; it must not travel
    payload = pickle.dumps(source)
    res = subprocess.run(
        [sys.executable, "-c", _CHILD, "f.bin"],
        input=payload,
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert res.stdout.decode().strip() == hashlib.sha256(data).hexdigest()


def test_forked_child_uses_its_own_connection(source: SmbSource, folder: Path) -> None:
    data = os.urandom(2 * MiB)
    write(folder / "f.bin", data)
    assert read_all(source, "f.bin") == data  # connection made before the fork
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            os.close(rfd)
            ok = read_all(source, "f.bin") == data
            source.close()
            os.write(wfd, b"ok" if ok else b"bad")
            code = 0
        finally:
            os._exit(code)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as r:
        answer = r.read()
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0 and answer == b"ok"
    assert read_all(source, "f.bin") == data  # the parent's connection is intact


# -- the test bed itself ---------------------------------------------------------------


def test_server_refuses_a_share_folder_its_user_cannot_reach(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir()
    private.chmod(0o700)
    (private / "share").mkdir()
    from tests.servers import TestbedError

    with pytest.raises(TestbedError, match="not reachable"):
        SmbServer(private / "share", tmp_path / "work").start()


def test_server_stops_every_process_it_started(share_dir: Path, tmp_path: Path) -> None:
    server = SmbServer(share_dir, tmp_path / "work").start()
    with SmbSource(server.source_address()) as src:
        src.check()  # a connected client: smbd has forked a child for it
        assert server._proc is not None
        pgid = server._proc.pid
        server.stop()
    server.stop()
    assert not SmbServer._group_alive(pgid)


# -- prefetch: compound opens sent ahead -------------------------------------------------


def test_prefetched_files_read_back_equal_including_one_larger_than_a_read(
    source: SmbSource, folder: Path
) -> None:
    files = {f"p{i}.bin": os.urandom(1000 * i + 1) for i in range(6)}
    files["big.bin"] = os.urandom(3 * MiB + 5)
    for name, data in files.items():
        write(folder / name, data)
    source.prefetch(sorted(files))
    assert {name: read_all(source, name) for name in sorted(files)} == files


def test_prefetched_files_not_opened_are_dropped_and_later_opens_work(
    source: SmbSource, folder: Path
) -> None:
    for i in range(5):
        write(folder / f"f{i}", f"data {i}".encode())
    source.prefetch([f"f{i}" for i in range(5)])
    assert read_all(source, "f3") == b"data 3"  # f0..f2 were announced, never opened
    assert read_all(source, "f0") == b"data 0"  # opened after all, the ordinary way
    source.close()  # f4's answer is still on the connection: closing drops it
    assert read_all(source, "f4") == b"data 4"


def test_a_prefetched_file_that_vanished_raises_source_file_not_found(
    source: SmbSource, folder: Path
) -> None:
    write(folder / "here", b"here")
    source.prefetch(["gone", "here"])
    with pytest.raises(SourceFileNotFound):
        source.open("gone")
    assert read_all(source, "here") == b"here"


def test_a_file_deleted_after_its_prefetch_is_still_read_whole_or_reported(
    source: SmbSource, folder: Path
) -> None:
    write(folder / "late", b"late bytes")
    source.prefetch(["late"])
    (folder / "late").unlink()
    try:
        data = read_all(source, "late")
    except SourceFileNotFound:
        return
    assert data == b"late bytes"  # the server answered before the delete: a whole copy
