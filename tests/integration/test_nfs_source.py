"""NfsSource against a real nfs-ganesha on 127.0.0.1 (one server for this module).

Files are made with plain ``os`` calls in the exported folder and read back through NFS.
The client runs as root but the export squashes root to uid 65534, so permissions bite.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import pickle
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.servers import TestbedError, prerequisites
from tests.servers import nfs as nfs_testbed
from tests.servers.nfs import NfsServer, ganesha_available
from tests.servers.prerequisites import Prerequisite

from sharelift.addresses import SourceAddress
from sharelift.errors import (
    AddressError,
    FileError,
    NotAFile,
    SourceFileNotFound,
    SourceFilePermissionDenied,
)
from sharelift.storage import EntryKind, nfs_source, open_source, retrying
from sharelift.storage.nfs_source import NfsSource

pytestmark = [
    pytest.mark.servers,
    pytest.mark.skipif(not ganesha_available(), reason=nfs_testbed.install_hint),
]

AWKWARD_NAMES = [
    "with space.txt",
    "unicode-êé-Hello, 世界.txt",
    "hash#tag.txt",
    "question?mark.txt",
    "percent%20encoded.txt",
    "plus+sign.txt",
    "semi;colon & amp='quote'.txt",
    "back\\slash.txt",
    "l" * 251 + ".txt",  # 255 bytes, the longest name ext4 allows
    "ü" * 127 + "x",  # 255 bytes of UTF-8
]


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(testbed_root: Path) -> Iterator[NfsServer]:
    base = testbed_root / "nfs-source-it"
    export = base / "export"
    export.mkdir(parents=True)
    for folder in (base, export):
        folder.chmod(0o755)
    srv = NfsServer(export, base / "work")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def area(server: NfsServer, unique_name: str) -> Iterator[Path]:
    """This test's own folder inside the export."""
    root = server.export_dir / unique_name
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    try:
        yield root
    finally:
        for dirpath, dirnames, _ in os.walk(root):
            for d in dirnames:
                os.chmod(os.path.join(dirpath, d), 0o755)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def address(server: NfsServer, area: Path) -> SourceAddress:
    return server.source_address(path=area.name)


@pytest.fixture
def source(address: SourceAddress) -> Iterator[NfsSource]:
    src = NfsSource(address)
    try:
        yield src
    finally:
        src.close()


def write(root: Path, rel: str, data: bytes = b"x", mode: int = 0o644) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    return path


def read_all(source: NfsSource, rel: str, chunk: int = 1024 * 1024) -> bytes:
    with source.open(rel) as f:
        pieces = []
        while piece := f.read(chunk):
            pieces.append(piece)
        return b"".join(pieces)


def entries(source: NfsSource) -> dict[str, object]:
    return {e.path: e for e in source.walk()}


# -- check --------------------------------------------------------------------------------


def test_check_passes_for_a_sub_folder_of_the_export(source: NfsSource) -> None:
    source.check()


def test_check_passes_for_the_export_root(server: NfsServer) -> None:
    with NfsSource(server.source_address()) as src:
        src.check()


def test_check_reports_connection_refused_on_a_wrong_port(address: SourceAddress) -> None:
    from sharelift.local.ports import free_port

    bad = dataclasses.replace(address, port=free_port())
    with pytest.raises(AddressError) as info:
        NfsSource(bad).check()
    assert info.value.address == address.name
    assert "connection refused" in info.value.cause
    assert str(bad.port) in info.value.cause


def test_check_reports_an_unknown_host_name(address: SourceAddress) -> None:
    with pytest.raises(AddressError) as info:
        NfsSource(dataclasses.replace(address, host="no-such-host.invalid")).check()
    assert "cannot resolve host name" in info.value.cause


def test_check_reports_a_missing_export_and_lists_the_real_ones(
    address: SourceAddress, server: NfsServer
) -> None:
    with pytest.raises(AddressError) as info:
        NfsSource(dataclasses.replace(address, share="/no-such-export")).check()
    assert "export /no-such-export does not exist" in info.value.cause
    assert server.export_path in info.value.cause


def test_check_reports_a_missing_export_over_nfs4(address: SourceAddress) -> None:
    bad = dataclasses.replace(address, share="/no-such-export", nfs_version=4, mount_port=None)
    with pytest.raises(AddressError) as info:
        NfsSource(bad).check()
    assert "export /no-such-export does not exist" in info.value.cause


def test_check_reports_a_missing_sub_folder(address: SourceAddress) -> None:
    with pytest.raises(AddressError) as info:
        NfsSource(dataclasses.replace(address, path=address.path + "/missing")).check()
    assert "does not exist" in info.value.cause
    assert "missing" in info.value.cause


def test_check_reports_a_sub_folder_that_is_a_file(area: Path, address: SourceAddress) -> None:
    write(area, "plain.txt")
    with pytest.raises(AddressError) as info:
        NfsSource(dataclasses.replace(address, path=address.path + "/plain.txt")).check()
    assert "is not a folder" in info.value.cause


def test_check_reports_a_sub_folder_it_may_not_list(area: Path, address: SourceAddress) -> None:
    (area / "closed").mkdir(mode=0o000)
    (area / "closed").chmod(0o000)
    with pytest.raises(AddressError) as info:
        NfsSource(dataclasses.replace(address, path=address.path + "/closed")).check()
    assert "permission denied" in info.value.cause


# -- walk ---------------------------------------------------------------------------------


def test_walk_reports_size_and_mtime_to_the_nanosecond(area: Path, source: NfsSource) -> None:
    write(area, "a.txt", b"hello")
    write(area, "sub/b.bin", os.urandom(3000))
    os.utime(area / "a.txt", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    files = {e.path: e for e in source.walk() if e.kind is EntryKind.FILE}
    assert set(files) == {"a.txt", "sub/b.bin"}
    for rel, entry in files.items():
        st = os.stat(area / rel)
        assert (entry.size, entry.mtime_ns, entry.mode) == (
            st.st_size,
            st.st_mtime_ns,
            stat.S_IMODE(st.st_mode),
        )
    assert files["a.txt"].mtime_ns == 1_600_000_000_123_456_789


def test_walk_is_depth_first_and_sorted_within_each_folder(area: Path, source: NfsSource) -> None:
    for rel in ["b/2.txt", "b/1.txt", "a.txt", "c.txt", "b/z/9.txt", "B.txt"]:
        write(area, rel)
    paths = [e.path for e in source.walk()]
    assert paths == ["B.txt", "a.txt", "b", "b/1.txt", "b/2.txt", "b/z", "b/z/9.txt", "c.txt"]


def test_walk_of_a_sub_tree_gives_paths_relative_to_the_source(
    area: Path, source: NfsSource
) -> None:
    write(area, "x/y/z.txt")
    write(area, "other.txt")
    assert [e.path for e in source.walk("x")] == ["x/y", "x/y/z.txt"]


def test_walk_reports_an_empty_folder_as_a_folder(area: Path, source: NfsSource) -> None:
    (area / "empty-dir").mkdir()
    found = entries(source)
    assert found["empty-dir"].kind is EntryKind.DIR
    assert found["empty-dir"].error is None


def test_walk_sees_changes_made_on_disk_at_once(area: Path, source: NfsSource) -> None:
    write(area, "grows.txt", b"1")
    assert entries(source)["grows.txt"].size == 1
    write(area, "grows.txt", b"12345")
    write(area, "new.txt", b"n")
    again = entries(source)
    assert again["grows.txt"].size == 5
    assert "new.txt" in again
    assert source.stat("grows.txt").size == 5


def test_walk_reports_symlinks_out_of_the_export_and_never_follows_them(
    area: Path, source: NfsSource, server: NfsServer
) -> None:
    outside = server.export_dir.parent / f"{area.name}-outside"  # not exported
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"SECRET OUTSIDE THE EXPORT")
    try:
        (area / "file-link").symlink_to(outside / "secret.txt")
        (area / "dir-link").symlink_to(outside)
        (area / "relative-link").symlink_to(f"../../{outside.name}/secret.txt")
        found = entries(source)
        assert {p: e.kind for p, e in found.items()} == {
            "dir-link": EntryKind.SYMLINK,
            "file-link": EntryKind.SYMLINK,
            "relative-link": EntryKind.SYMLINK,
        }
        for link in found:
            with pytest.raises(NotAFile):
                source.open(link)
    finally:
        shutil.rmtree(outside)


def test_opening_a_symlink_is_refused_as_not_a_file(area: Path, source: NfsSource) -> None:
    write(area, "target.txt", b"target")
    (area / "link").symlink_to("target.txt")
    with pytest.raises(NotAFile):
        source.open("link")


def test_stat_of_a_symlink_describes_the_link_itself(area: Path, source: NfsSource) -> None:
    write(area, "target.txt", b"target")
    (area / "link").symlink_to("target.txt")
    assert source.stat("link").kind is EntryKind.SYMLINK


@pytest.mark.parametrize("name", AWKWARD_NAMES, ids=lambda n: n[:24])
def test_awkward_names_are_listed_and_read_back_exactly(
    area: Path, source: NfsSource, name: str
) -> None:
    data = f"content of {name}".encode()
    write(area, f"dir with space/{name}", data)
    assert f"dir with space/{name}" in entries(source)
    assert read_all(source, f"dir with space/{name}") == data


def test_a_deep_path_is_listed_and_read(area: Path, source: NfsSource) -> None:
    rel = "/".join(f"level{i:02d}" for i in range(40)) + "/deep.txt"
    write(area, rel, b"deep")
    assert rel in entries(source)
    assert read_all(source, rel) == b"deep"


def test_a_name_that_is_not_utf8_is_an_error_entry_and_the_walk_goes_on(
    area: Path, source: NfsSource
) -> None:
    with open(os.path.join(os.fsencode(area), b"bad-\xff.txt"), "wb") as f:
        f.write(b"bad")
    write(area, "good.txt")
    found = entries(source)
    bad = found["bad-\udcff.txt"]
    assert bad.error is not None and "UTF-8" in bad.error
    assert found["good.txt"].error is None
    with pytest.raises(FileError):
        source.open("bad-\udcff.txt")  # refused before it reaches (and crashes) the binding


def test_a_fifo_is_reported_as_other_and_not_opened(area: Path, source: NfsSource) -> None:
    os.mkfifo(area / "pipe")
    assert entries(source)["pipe"].kind is EntryKind.OTHER
    with pytest.raises(NotAFile):
        source.open("pipe")


# -- per-file errors ----------------------------------------------------------------------


def test_a_file_deleted_after_the_walk_is_not_found(area: Path, source: NfsSource) -> None:
    write(area, "vanishing.txt", b"soon gone")
    assert "vanishing.txt" in entries(source)
    (area / "vanishing.txt").unlink()
    with pytest.raises(SourceFileNotFound):
        source.open("vanishing.txt")


def test_stat_of_a_missing_file_is_not_found(source: NfsSource) -> None:
    with pytest.raises(SourceFileNotFound):
        source.stat("nope.txt")


def test_an_unreadable_file_is_permission_denied_while_the_walk_goes_on(
    area: Path, source: NfsSource
) -> None:
    write(area, "locked.txt", b"no", mode=0o000)
    write(area, "open.txt", b"yes")
    assert sorted(e.path for e in source.walk()) == ["locked.txt", "open.txt"]
    with pytest.raises(SourceFilePermissionDenied):
        source.open("locked.txt")
    assert read_all(source, "open.txt") == b"yes"


def test_an_unlistable_folder_is_one_error_entry_and_the_walk_goes_on(
    area: Path, source: NfsSource
) -> None:
    write(area, "closed/inside.txt")
    write(area, "later.txt")
    (area / "closed").chmod(0o000)
    walked = list(source.walk())
    closed = [e for e in walked if e.path == "closed"]
    assert len(closed) == 1
    assert closed[0].kind is EntryKind.DIR and closed[0].error
    assert "permission denied" in closed[0].error
    assert [e.path for e in walked] == ["closed", "later.txt"]


def test_a_file_owned_by_the_configured_uid_is_readable_with_it(
    area: Path, address: SourceAddress
) -> None:
    path = write(area, "private.txt", b"mine", mode=0o600)
    os.chown(path, 4321, 4321)
    with NfsSource(address) as as_root_squashed, pytest.raises(SourceFilePermissionDenied):
        read_all(as_root_squashed, "private.txt")
    with NfsSource(dataclasses.replace(address, nfs_uid=4321, nfs_gid=4321)) as as_owner:
        assert read_all(as_owner, "private.txt") == b"mine"


def test_opening_a_folder_is_refused_as_not_a_file(area: Path, source: NfsSource) -> None:
    (area / "folder").mkdir()
    with pytest.raises(NotAFile):
        source.open("folder")


# -- reading ------------------------------------------------------------------------------


def test_a_big_file_reads_back_byte_for_byte(area: Path, source: NfsSource) -> None:
    data = os.urandom(20 * 1024 * 1024 + 17)
    write(area, "big.bin", data)
    assert read_all(source, "big.bin", chunk=source.features.read_chunk_size) == data


def test_reads_of_any_size_give_the_same_bytes(area: Path, source: NfsSource) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    write(area, "mixed.bin", data)
    with source.open("mixed.bin") as f:
        pieces = [f.read(n) for n in (1, 4095, 2 * 1024 * 1024, 7, 3 * 1024 * 1024)]
        assert f.read(10) == b""
    assert b"".join(pieces) == data


def test_a_zero_byte_file_is_listed_with_size_zero_and_reads_empty(
    area: Path, source: NfsSource
) -> None:
    write(area, "empty.dat", b"")
    assert entries(source)["empty.dat"].size == 0
    assert read_all(source, "empty.dat") == b""


def test_a_file_that_grew_after_open_reads_on_past_the_old_size(
    area: Path, source: NfsSource
) -> None:
    write(area, "growing.log", b"a" * 10)
    with source.open("growing.log") as f:
        with open(area / "growing.log", "ab") as g:
            g.write(b"b" * 10)
        assert f.read(100) + f.read(100) == b"a" * 10 + b"b" * 10


def test_reading_after_the_source_closed_raises_instead_of_crashing(
    area: Path, address: SourceAddress
) -> None:
    write(area, "f.txt", b"data")
    src = NfsSource(address)
    stream = src.open("f.txt")
    src.close()
    with pytest.raises(ValueError):
        stream.read(1)
    stream.close()
    src.close()  # twice is fine


# -- the source object ---------------------------------------------------------------------


def test_display_url_names_host_export_sub_folder_and_path(
    source: NfsSource, server: NfsServer, area: Path
) -> None:
    assert source.display_url("sub/file.txt") == (
        f"nfs://127.0.0.1{server.export_path}/{area.name}/sub/file.txt"
    )


def test_open_source_builds_an_nfs_source_with_the_advertised_features(
    address: SourceAddress,
) -> None:
    with open_source(address) as src:
        assert isinstance(src, NfsSource)
        assert src.scheme == "nfs"
        assert src.features.gil_bound and src.features.reports_symlinks


def _read_in_child(source: NfsSource, rel: str) -> bytes:
    with source.open(rel) as f:
        return f.read(-1)


def test_the_source_pickles_as_its_address_and_reads_in_a_spawned_process(
    area: Path, source: NfsSource
) -> None:
    write(area, "shared.txt", b"from the child")
    source.check()  # connected in the parent first: the pickle must not carry that
    clone = pickle.loads(pickle.dumps(source))
    assert clone.address == source.address
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(_read_in_child, (source, "shared.txt")) == b"from the child"


def test_a_source_inherited_through_fork_reconnects_in_the_child(
    area: Path, source: NfsSource
) -> None:
    write(area, "forked.txt", b"forked")
    assert read_all(source, "forked.txt") == b"forked"  # parent connection in use
    assert _in_forked_child(source, "forked.txt") == b"forked"
    assert read_all(source, "forked.txt") == b"forked"  # parent connection still fine


def _in_forked_child(source: NfsSource, rel: str) -> bytes:
    """Read in a bare forked child that leaves with os._exit.

    A fork of the test process (which also runs Airflow, SMB client threads, ...) must not
    run inherited atexit handlers or pool shutdown: a multiprocessing.Pool worker once hung
    there on a clean-clone run. The child is killed if it does not answer in time.
    """
    parent, child = multiprocessing.Pipe(duplex=False)
    pid = os.fork()
    if pid == 0:  # the child
        code = 0
        try:
            child.send(_read_in_child(source, rel))
        except BaseException:  # noqa: BLE001 - report nothing, exit non-zero
            code = 1
        os._exit(code)
    try:
        if not parent.poll(60):
            raise AssertionError("forked child did not answer within 60 s")
        return parent.recv()  # type: ignore[no-any-return]
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)


def test_nfs_version_4_walks_and_reads_too(area: Path, address: SourceAddress) -> None:
    write(area, "d/v4.txt", b"four")
    v4 = dataclasses.replace(address, nfs_version=4, mount_port=None)
    with NfsSource(v4) as src:
        src.check()
        assert [e.path for e in src.walk()] == ["d", "d/v4.txt"]
        assert read_all(src, "d/v4.txt") == b"four"


SHORT_RETRY = retrying.RetryPolicy(first_wait=0.2, max_wait=0.5, request_time=2, file_time=2)
"""Transient errors are still retried, for 2 s instead of the default's minute and a half."""


def test_a_server_that_dies_ends_the_walk_and_fails_reads_without_hanging(
    tmp_path: Path,
) -> None:
    export = tmp_path / "dying"
    (export / "a").mkdir(parents=True)
    export.chmod(0o755)
    (export / "a" / "f.txt").write_bytes(b"f")
    (export / "b").mkdir()
    with NfsServer(export, tmp_path / "work") as doomed, retrying.file_scope(SHORT_RETRY):
        src = NfsSource(doomed.source_address())
        assert src.stat("a/f.txt").size == 1
        walk = src.walk()
        assert next(walk).path == "a"
        doomed.stop()
        with pytest.raises(AddressError, match="lost the connection"):
            list(walk)
        with pytest.raises(FileError, match="connection failed"):
            src.open("a/f.txt")
        src.close()


def test_a_server_that_stops_answering_times_out_instead_of_hanging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    from sharelift.storage import nfs_source

    monkeypatch.setattr(nfs_source, "RPC_TIMEOUT_MS", 1000)
    export = tmp_path / "frozen"
    export.mkdir()
    export.chmod(0o755)
    (export / "f.txt").write_bytes(b"f")
    with (
        NfsServer(export, tmp_path / "work") as frozen,
        NfsSource(frozen.source_address()) as src,
        retrying.file_scope(SHORT_RETRY),
    ):
        assert src.stat("f.txt").size == 1
        assert frozen._proc is not None
        os.kill(frozen._proc.pid, signal.SIGSTOP)
        try:
            with pytest.raises(FileError, match="timed out"):
                src.open("f.txt")
            with pytest.raises(AddressError, match="timed out"):
                list(src.walk())
        finally:
            os.kill(frozen._proc.pid, signal.SIGCONT)
        assert read_all(src, "f.txt") == b"f"  # the same source carries on afterwards


# -- the server ---------------------------------------------------------------------------


def test_a_second_server_runs_beside_the_first_and_stops_cleanly(
    server: NfsServer, tmp_path: Path
) -> None:
    export = tmp_path / "second"
    export.mkdir()
    export.chmod(0o755)
    (export / "two.txt").write_bytes(b"2")
    second = NfsServer(export, tmp_path / "work", export_path="/second", read_only=True)
    with second:
        assert second.nfs_port != server.nfs_port
        with NfsSource(second.source_address()) as src:
            assert read_all(src, "two.txt") == b"2"
        pid = second._proc.pid if second._proc else None
    second.stop()  # idempotent
    assert pid not in nfs_testbed.ganesha_processes()
    with NfsSource(server.source_address()) as first:
        first.check()  # the module's server did not notice


def test_start_without_ganesha_explains_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    absent = Prerequisite("nfs-ganesha is not installed", "nfs-ganesha", program="no-such-nfsd")
    monkeypatch.setitem(prerequisites.PREREQUISITES, "ganesha.nfsd", absent)
    with pytest.raises(TestbedError, match=r"install the Debian package nfs-ganesha \("):
        NfsServer(tmp_path, tmp_path / "work").start()


def test_start_without_the_vfs_fsal_names_its_debian_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    absent = Prerequisite(
        "no VFS FSAL", "nfs-ganesha-vfs", paths=(str(tmp_path / "libfsalvfs.so"),)
    )
    monkeypatch.setitem(prerequisites.PREREQUISITES, "fsal-vfs", absent)
    with pytest.raises(TestbedError, match=r"install the Debian package nfs-ganesha-vfs \("):
        NfsServer(tmp_path, tmp_path / "work").start()
    assert not (tmp_path / "work").exists()  # refused before anything was set up


# -- open_entry: opening on the scan's word (no GETATTR) ------------------------------------


def _seen(source: NfsSource, rel: str):  # type: ignore[no-untyped-def]
    return entries(source)[rel]


def test_open_entry_reads_a_file_the_scan_saw(area: Path, source: NfsSource) -> None:
    data = os.urandom(300_000)
    write(area, "seen.bin", data)
    with source.open_entry(_seen(source, "seen.bin")) as stream:
        assert stream.read(-1) == data


def test_open_entry_refuses_what_became_a_folder_or_a_fifo(area: Path, source: NfsSource) -> None:
    write(area, "was-file", b"x")
    write(area, "was-file-too", b"x")
    seen, seen_too = _seen(source, "was-file"), _seen(source, "was-file-too")
    (area / "was-file").unlink()
    (area / "was-file").mkdir()
    (area / "was-file-too").unlink()
    os.mkfifo(area / "was-file-too")
    for entry, what in ((seen, "folder"), (seen_too, "regular file")):
        with pytest.raises(NotAFile) as info, source.open_entry(entry) as stream:
            stream.read(1024)
        assert what in str(info.value)


def test_open_entry_of_a_file_that_grew_or_shrank_is_caught_by_the_exact_reader(
    area: Path, source: NfsSource
) -> None:
    from sharelift.errors import SourceFileChanged
    from sharelift.storage.streaming import ExactReader

    write(area, "grew", b"a" * 1000)
    write(area, "shrank", b"b" * 1000)
    grew, shrank = _seen(source, "grew"), _seen(source, "shrank")
    write(area, "grew", b"a" * 1500)
    write(area, "shrank", b"b" * 500)
    for entry, word in ((grew, "grew"), (shrank, "shrank")):
        with source.open_entry(entry) as stream:
            reader = ExactReader(stream, entry.size, entry.path)
            with pytest.raises(SourceFileChanged, match=word):
                reader.read_exact(entry.size)
                reader.finish()


# -- open_entry on NFSv3: a LOOKUP in the kept folder handle, READs in flight ------------------


def test_open_entry_tells_the_file_before_the_read_with_its_change_time(
    area: Path, source: NfsSource
) -> None:
    path = write(area, "kept-mtime.bin", b"a" * 1000)
    entry = _seen(source, "kept-mtime.bin")
    with source.open_entry(entry) as stream:
        first = source.opened(stream)
    assert first is not None and first.ctime_ns is not None
    assert (first.size, first.mtime_ns) == (entry.size, entry.mtime_ns)
    st = path.stat()
    time.sleep(0.01)
    path.write_bytes(b"b" * 1000)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # only the change time moves
    with source.open_entry(entry) as stream:
        second = source.opened(stream)
    assert second is not None and second.differs(first)


def test_open_entry_reads_a_big_file_in_order_with_several_reads_in_flight(
    area: Path, source: NfsSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nfs_source, "READ_CHUNK", 64 * 1024)  # many READs, four in flight
    data = os.urandom(1_000_003)
    write(area, "big.bin", data)
    entry = _seen(source, "big.bin")
    for piece in (1000, 64 * 1024, 300_000):
        with source.open_entry(entry) as stream:
            got = []
            while chunk := stream.read(piece):
                got.append(chunk)
            assert b"".join(got) == data
            assert not source.fingerprint(stream, entry.path).differs(source.opened(stream))


def test_a_small_file_is_copied_with_one_lookup_and_one_read(
    area: Path, source: NfsSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sharelift.storage import nfs3_rpc

    write(area, "small/one.txt", b"one" * 100)
    write(area, "small/two.txt", b"two" * 100)
    write(area, "small/three.txt", b"three" * 100)
    seen = entries(source)
    with source.open_entry(seen["small/one.txt"]) as stream:  # finds the folder's handle
        stream.read(-1)
    sent: list[str] = []
    queued = nfs3_rpc.Rpc._queued

    def counted(self, kind, call, submit, args):  # type: ignore[no-untyped-def]
        sent.append(kind)
        return queued(self, kind, call, submit, args)

    monkeypatch.setattr(nfs3_rpc.Rpc, "_queued", counted)
    for name in ("small/two.txt", "small/three.txt"):
        entry = seen[name]
        with source.open_entry(entry) as stream:
            assert len(stream.read(10_000)) == entry.size
            assert stream.read(1) == b""  # the READ's end-of-file flag: no second READ
            assert not source.fingerprint(stream, name).differs(source.opened(stream))
    assert sent == ["lookup", "read", "lookup", "read"]  # the folder's handle was kept


def test_open_entry_finds_a_file_in_a_folder_replaced_since_its_handle_was_kept(
    area: Path, source: NfsSource
) -> None:
    write(area, "swapped/first.txt", b"first")
    write(area, "swapped/second.txt", b"old")
    seen = entries(source)
    with source.open_entry(seen["swapped/first.txt"]) as stream:
        assert stream.read(100) == b"first"
    shutil.rmtree(area / "swapped")
    write(area, "swapped/second.txt", b"new")
    with source.open_entry(seen["swapped/second.txt"]) as stream:
        assert stream.read(100) == b"new"
    shutil.rmtree(area / "swapped")
    with pytest.raises(SourceFileNotFound):
        source.open_entry(seen["swapped/second.txt"])


def test_open_entry_refuses_a_symlink_swapped_in_for_the_file(
    area: Path, source: NfsSource
) -> None:
    write(area, "target.txt", b"secret")
    write(area, "victim.txt", b"plain")
    entry = _seen(source, "victim.txt")
    (area / "victim.txt").unlink()
    (area / "victim.txt").symlink_to("target.txt")
    with pytest.raises(NotAFile, match="symlink"):
        source.open_entry(entry)


def test_open_entry_of_an_unreadable_file_fails_as_permission_denied(
    area: Path, source: NfsSource
) -> None:
    write(area, "locked.txt", b"locked", mode=0o000)
    entry = _seen(source, "locked.txt")
    with pytest.raises(SourceFilePermissionDenied), source.open_entry(entry) as stream:
        stream.read(100)


def test_open_entry_reads_files_deep_in_the_tree_and_beside_each_other(
    area: Path, source: NfsSource
) -> None:
    deep = "/".join(f"d{k}" for k in range(40))
    write(area, f"{deep}/bottom.txt", b"bottom")
    write(area, "d0/d1/side.txt", b"side")
    seen = entries(source)
    for rel, data in ((f"{deep}/bottom.txt", b"bottom"), ("d0/d1/side.txt", b"side")):
        with source.open_entry(seen[rel]) as stream:
            assert stream.read(100) == data
