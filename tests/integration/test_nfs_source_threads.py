"""NfsSource and threads, against a real nfs-ganesha on 127.0.0.1.

The blocking libnfs calls go through ctypes, which releases the GIL: other threads run
while one waits on the server, and clones on threads read side by side. ``walk`` lists
the next folders on helper threads (their own contexts) ahead of the depth-first walk.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.servers import nfs as nfs_testbed
from tests.servers.nfs import NfsServer, ganesha_available

from sharelift.errors import AddressError, FileError
from sharelift.storage import nfs_source, retrying
from sharelift.storage.base import Entry
from sharelift.storage.nfs_source import NfsSource

pytestmark = [
    pytest.mark.servers,
    pytest.mark.skipif(not ganesha_available(), reason=nfs_testbed.install_hint),
]


@pytest.fixture
def server(nfs_server: NfsServer) -> NfsServer:
    """The session's NFS server; each test works in a folder of its own."""
    return nfs_server


@pytest.fixture
def area(server: NfsServer, unique_name: str) -> Iterator[Path]:
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
def prefetch_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Helpers from the second folder on (normally the walk lists a few folders alone)."""
    monkeypatch.setattr(nfs_source, "PREFETCH_AFTER", 1)


def write(root: Path, rel: str, data: bytes = b"x", mode: int = 0o644) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    return path


def plain_walk(source: NfsSource, monkeypatch: pytest.MonkeyPatch) -> list[Entry]:
    with monkeypatch.context() as m:
        m.setattr(nfs_source, "PREFETCH_THREADS", 0)
        return list(source.walk())


def make_tree(root: Path, folders: int = 40) -> None:
    rng = random.Random(3)
    for i in range(folders):
        for j in range(rng.randint(0, 6)):
            write(root, f"d{i:02d}/f{j}.txt", b"y" * j)
        if i % 7 == 0:
            write(root, f"d{i:02d}/inner/deeper/z.txt", b"z")
            (root / f"d{i:02d}" / "inner" / "empty").mkdir()


# -- walk ---------------------------------------------------------------------------------


def test_a_prefetched_walk_matches_a_plain_walk_with_an_unlistable_folder_in_the_middle(
    area: Path, server: NfsServer, monkeypatch: pytest.MonkeyPatch, prefetch_at_once: None
) -> None:
    make_tree(area)
    write(area, "d20/closed/secret.txt")
    (area / "d20" / "closed").chmod(0o000)
    (area / "d30" / "link").symlink_to("../d01")
    with open(os.path.join(os.fsencode(area / "d31"), b"bad-\xff.txt"), "wb") as f:
        f.write(b"bad")
    with NfsSource(server.source_address(path=area.name)) as src:
        expected = plain_walk(src, monkeypatch)
        walk = src.walk()
        got = [next(walk)]
        (prefetcher,) = src._walks
        got += list(walk)
    assert got == expected
    assert prefetcher.helpers, "no helper was started"
    closed = [e for e in got if e.path == "d20/closed"]
    assert len(closed) == 1 and closed[0].error and "permission denied" in closed[0].error
    assert "d20/closed/secret.txt" not in {e.path for e in got}
    assert [e.path for e in got if e.error and "UTF-8" in e.error] == ["d31/bad-\udcff.txt"]


def test_closing_the_walk_early_closes_the_helper_contexts(
    area: Path, server: NfsServer, prefetch_at_once: None
) -> None:
    make_tree(area)
    with NfsSource(server.source_address(path=area.name)) as src:
        walk = src.walk()
        for _ in range(10):
            next(walk)
        (prefetcher,) = src._walks
        threads, helpers = list(prefetcher._threads), list(prefetcher.helpers)
        deadline = time.monotonic() + 10
        while not any(h._ctx is not None for h in helpers) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert any(h._ctx is not None for h in helpers), "no helper connected"
        walk.close()
        assert not any(t.is_alive() for t in threads)
        assert all(h._ctx is None for h in helpers)
        assert len(src._walks) == 0
        src.check()  # the walk's own context is still fine


def test_a_server_that_dies_during_a_prefetched_walk_ends_it_without_hanging(
    tmp_path: Path, prefetch_at_once: None
) -> None:
    export = tmp_path / "dying"
    export.mkdir()
    export.chmod(0o755)
    for i in range(200):
        (export / f"d{i:03d}").mkdir()
        (export / f"d{i:03d}" / "f.txt").write_bytes(b"f")
    with NfsServer(export, tmp_path / "work") as doomed:
        src = NfsSource(doomed.source_address())
        walk = src.walk()
        assert next(walk).path == "d000"
        (prefetcher,) = src._walks
        doomed.stop()
        with pytest.raises(AddressError, match="lost the connection"):
            list(walk)
        assert not any(t.is_alive() for t in prefetcher._threads)
        assert all(h._ctx is None for h in prefetcher.helpers)
        src.close()


# -- the GIL and reads on threads ----------------------------------------------------------


def test_a_thread_waiting_on_the_server_lets_the_other_threads_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through SWIG, a call waiting on a frozen server held the GIL: the process froze."""
    monkeypatch.setattr(nfs_source, "RPC_TIMEOUT_MS", 3000)
    export = tmp_path / "frozen"
    export.mkdir()
    export.chmod(0o755)
    (export / "f.txt").write_bytes(b"f")
    with NfsServer(export, tmp_path / "work") as frozen, NfsSource(frozen.source_address()) as src:
        assert src.stat("f.txt").size == 1
        assert frozen._proc is not None
        failures: list[BaseException] = []

        def blocked_open() -> None:
            # One try: a timed-out RPC is otherwise retried (storage.retrying).
            try:
                with retrying.file_scope(retrying.NO_RETRY):
                    src.open("f.txt").close()
            except FileError as exc:
                failures.append(exc)

        os.kill(frozen._proc.pid, signal.SIGSTOP)
        try:
            waiting = threading.Thread(target=blocked_open)
            waiting.start()
            time.sleep(0.2)  # the open is in its RPC now
            ticks = 0
            started = time.monotonic()
            while time.monotonic() - started < 1.0:
                time.sleep(0.01)
                ticks += 1
            assert waiting.is_alive(), "the open did not wait on the frozen server"
            assert ticks >= 20
            waiting.join(30)  # until the RPC times out (3 s)
            assert not waiting.is_alive()
        finally:
            os.kill(frozen._proc.pid, signal.SIGCONT)
        assert failures and "timed out" in str(failures[0])


def test_clones_on_four_threads_read_every_file_exactly(area: Path, server: NfsServer) -> None:
    rng = random.Random(5)
    contents = {f"d{i % 8}/f{i:03d}.bin": rng.randbytes(rng.randint(0, 70_000)) for i in range(200)}
    for rel, data in contents.items():
        write(area, rel, data)
    paths = sorted(contents)
    results: dict[str, bytes] = {}
    errors: list[BaseException] = []
    with NfsSource(server.source_address(path=area.name)) as src:
        clones = [NfsSource(src.address) for _ in range(4)]

        def read(clone: NfsSource, mine: list[str]) -> None:
            try:
                for rel in mine:
                    with clone.open(rel) as f:
                        results[rel] = f.read(-1)
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)

        threads = [threading.Thread(target=read, args=(clones[k], paths[k::4])) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for clone in clones:
            clone.close()
    assert errors == []
    assert results == contents


def test_readinto_fills_a_bytearray_and_leaves_it_resizable(area: Path, server: NfsServer) -> None:
    data = os.urandom(100_000)
    write(area, "r.bin", data)
    with NfsSource(server.source_address(path=area.name)) as src, src.open("r.bin") as f:
        buf = bytearray(60_000)
        assert f.readinto(buf) == 60_000
        assert bytes(buf) == data[:60_000]
        buf.extend(b"!")  # no ctypes view keeps the buffer pinned
        assert f.readinto(memoryview(bytearray(50_000))) == 40_000
        assert f.read(10) == b""
