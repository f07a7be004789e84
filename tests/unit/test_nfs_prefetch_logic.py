"""NfsSource.walk listing folders ahead on helper threads, against a fake listing.

``NfsSource._list_dir`` is replaced by a function that serves a tree made of dicts (and
sleeps a little, as an RPC would, without the GIL), so the prefetching logic is checked
without a server: same entries in the same order as a plain walk, the same error
semantics, bounded look-ahead, one thread per helper context, helpers stopped on close.
"""

from __future__ import annotations

import ctypes
import errno
import gc
import random
import stat
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sharelift.addresses import SourceAddress
from sharelift.errors import AddressError
from sharelift.storage import nfs_source
from sharelift.storage.base import Entry
from sharelift.storage.nfs_source import NfsSource, _NfsCallError, _NfsDirent, _NfsStat64

FILE = stat.S_IFREG | 0o644
DIR = stat.S_IFDIR | 0o755
ADDRESS = SourceAddress(name="fake-nfs", protocol="nfs", host="127.0.0.1", share="/export")

Tree = dict[str, Any]  # name -> Tree (a folder), int (a file's size) or an _NfsCallError


class FakeServer:
    """Serves ``_list_dir`` from a tree and records who listed what, on which thread."""

    def __init__(self, tree: Tree, delay: float = 0.0005) -> None:
        self.tree = tree
        self.delay = delay
        self.calls: list[tuple[int, int, str]] = []  # (id(source), thread ident, abs path)
        self.lock = threading.Lock()
        self.refuse_helpers = False
        self.main_ids: set[int] = set()

    def list_dir(self, source: NfsSource, abs_path: str) -> list[tuple[str, int, int, int]]:
        with self.lock:
            self.calls.append((id(source), threading.get_ident(), abs_path))
        if self.refuse_helpers and id(source) not in self.main_ids:
            raise AddressError(source.address.name, "cannot connect (fake)")
        time.sleep(self.delay)  # an RPC: other threads run meanwhile
        node: Any = self.tree
        for part in [p for p in abs_path.split("/") if p]:
            if not isinstance(node, dict) or part not in node:
                raise _NfsCallError(-errno.ENOENT, "NFS3ERR_NOENT (fake)")
            node = node[part]
        if isinstance(node, _NfsCallError):
            raise node
        if not isinstance(node, dict):
            raise _NfsCallError(-errno.ENOTDIR, "NFS3ERR_NOTDIR (fake)")
        out = []
        for name, child in node.items():
            if isinstance(child, int):
                out.append((name, FILE, child, 1_000_000_000 * len(name)))
            else:
                out.append((name, DIR, 4096, 7))
        out.sort(key=lambda item: item[0])
        return out


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServer]:
    server = FakeServer({})
    monkeypatch.setattr(NfsSource, "_list_dir", lambda self, path: server.list_dir(self, path))
    monkeypatch.setattr(nfs_source, "PREFETCH_AFTER", 1)
    monkeypatch.setattr(nfs_source, "PREFETCH_THREADS", 3)
    monkeypatch.setattr(nfs_source, "PREFETCH_FOLDERS", 6)
    yield server


def make_source(fake: FakeServer) -> NfsSource:
    src = NfsSource(ADDRESS)
    fake.main_ids.add(id(src))
    return src


def plain_walk(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch, top: str = ""
) -> tuple[list[Entry], BaseException | None]:
    with monkeypatch.context() as m:
        m.setattr(nfs_source, "PREFETCH_THREADS", 0)
        return collect(make_source(fake), top)


def collect(src: NfsSource, top: str = "") -> tuple[list[Entry], BaseException | None]:
    out: list[Entry] = []
    try:
        for entry in src.walk(top):
            out.append(entry)
    except AddressError as exc:
        return out, exc
    finally:
        src.close()
    return out, None


def random_tree(rng: random.Random, depth: int) -> Tree:
    tree: Tree = {}
    for i in range(rng.randint(0, 12)):
        tree[f"f{rng.randint(0, 999):03d}-{i}"] = rng.randint(0, 5000)
    if depth > 0:
        for i in range(rng.randint(0, 6)):
            tree[f"d{rng.randint(0, 99):02d}-{i}"] = random_tree(rng, depth - 1)
    return tree


def helper_calls(fake: FakeServer) -> list[tuple[int, int, str]]:
    return [call for call in fake.calls if call[0] not in fake.main_ids]


# -- same entries, same order, same errors -----------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_a_prefetched_walk_yields_exactly_what_a_plain_walk_yields(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    rng = random.Random(seed)
    tree = random_tree(rng, 4)
    tree["m-closed"] = _NfsCallError(-errno.EACCES, "NFS3ERR_ACCES (fake)")
    tree["m-open"] = {"x": 1, "sub": {"y": 2}, "closed-too": _NfsCallError(-errno.EPERM, "")}
    tree["m-gone"] = _NfsCallError(-errno.ENOENT, "NFS3ERR_NOENT (fake)")  # removed since
    tree["m-bad-\udcff"] = {"never": 1}  # not UTF-8: reported, never listed
    tree["m-empty"] = {}
    fake.tree = tree
    expected, error = plain_walk(fake, monkeypatch)
    assert error is None
    fake.calls.clear()
    got, error = collect(make_source(fake))
    assert error is None
    assert got == expected
    assert helper_calls(fake), "the helpers listed nothing"
    closed = [e for e in got if e.path == "m-closed"]
    assert len(closed) == 1 and closed[0].error and "permission denied" in closed[0].error
    assert "m-gone" not in {e.path for e in got}
    assert not any(e.path.startswith("m-bad-\udcff/") for e in got)


def test_a_prefetched_walk_of_a_sub_tree_matches_too(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.tree = {"top": random_tree(random.Random(42), 3), "other": {"z": 1}}
    expected, _ = plain_walk(fake, monkeypatch, "top")
    got, _ = collect(make_source(fake), "top")
    assert got == expected
    assert all(e.path.startswith("top/") for e in got)


def test_a_lost_connection_ends_a_prefetched_walk_where_a_plain_walk_ends(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    lost = _NfsCallError(-errno.EIO, "RPC: connect failed (fake)")
    fake.tree = {f"d{i:02d}": {"f": i} for i in range(20)}
    fake.tree["d12"] = lost
    expected, error = plain_walk(fake, monkeypatch)
    assert isinstance(error, AddressError) and "lost the connection" in error.cause
    got, error = collect(make_source(fake))
    assert isinstance(error, AddressError) and "lost the connection" in error.cause
    assert got == expected
    assert got[-1].path == "d11/f"


def test_a_helper_that_cannot_connect_leaves_its_folders_to_the_walk(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.tree = random_tree(random.Random(7), 3)
    expected, _ = plain_walk(fake, monkeypatch)
    fake.refuse_helpers = True
    got, error = collect(make_source(fake))
    assert error is None
    assert got == expected


# -- threads, contexts, bounds -------------------------------------------------------------


def test_each_helper_context_is_used_by_one_thread_and_the_walk_keeps_its_own(
    fake: FakeServer,
) -> None:
    fake.tree = {f"d{i:03d}": {f"f{j}": j for j in range(5)} for i in range(60)}
    src = make_source(fake)
    main = threading.get_ident()
    entries, _ = collect(src)
    assert len(entries) == 60 * 6
    threads_of: dict[int, set[int]] = {}
    for source_id, thread, _path in fake.calls:
        threads_of.setdefault(source_id, set()).add(thread)
    assert threads_of.pop(id(src)) == {main}
    assert threads_of, "no helper listed anything"
    assert len(threads_of) <= nfs_source.PREFETCH_THREADS
    for threads in threads_of.values():
        assert len(threads) == 1 and main not in threads
    listed = [path for _, _, path in fake.calls]
    assert sorted(listed) == sorted(set(listed)), "a folder was listed twice"


def test_the_look_ahead_stays_within_its_bounds(fake: FakeServer) -> None:
    fake.tree = {f"d{i:03d}": {f"f{j}": j for j in range(30)} for i in range(80)}
    fake.delay = 0
    src = make_source(fake)
    most = 0
    for _ in src.walk():
        for walk in list(src._walks):
            pending = walk._pending
            most = max(most, len(pending))
            in_flight = sum(1 for task in pending.values() if not task.done.is_set())
            assert in_flight <= 2 * nfs_source.PREFETCH_THREADS
    src.close()
    assert 0 < most <= nfs_source.PREFETCH_FOLDERS


def test_the_look_ahead_stops_while_finished_listings_hold_enough_entries(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nfs_source, "PREFETCH_ENTRIES", 50)
    monkeypatch.setattr(nfs_source, "PREFETCH_FOLDERS", 32)
    fake.tree = {f"d{i:03d}": {f"f{j}": j for j in range(40)} for i in range(40)}
    src = make_source(fake)
    walk = src.walk()
    for _ in range(5):
        next(walk)
    (prefetcher,) = src._walks
    for task in list(prefetcher._pending.values()):  # every submitted listing done
        assert task.done.wait(30)
    prefetcher.top_up()
    held = sum(len(t.items or ()) for t in prefetcher._pending.values())
    # Submissions stop once 50 entries are held: what was held below it (one folder of 40)
    # plus what was in flight then, no more (without the bound, finished listings would
    # free in-flight slots and fill up to 32 folders).
    assert 50 <= held <= (2 * nfs_source.PREFETCH_THREADS + 1) * 40
    # In flight at most 2 per helper, plus the one finished folder held below the bound.
    assert len(prefetcher._pending) <= 2 * nfs_source.PREFETCH_THREADS + 1
    walk.close()
    src.close()


def test_a_small_walk_starts_no_helpers(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nfs_source, "PREFETCH_AFTER", 8)
    fake.tree = {"a": {"f": 1}, "b": {"g": {"h": 2}}, "c": 3}
    got, _ = collect(make_source(fake))
    assert [e.path for e in got] == ["a", "a/f", "b", "b/g", "b/g/h", "c"]
    assert helper_calls(fake) == []
    assert {thread for _, thread, _ in fake.calls} == {threading.get_ident()}


def _helpers_closed(monkeypatch: pytest.MonkeyPatch) -> set[int]:
    """Record the id of every NfsSource closed from now on."""
    closed: set[int] = set()
    original = NfsSource.close

    def close(self: NfsSource) -> None:
        closed.add(id(self))
        original(self)

    monkeypatch.setattr(NfsSource, "close", close)
    return closed


def _walk_under_way(fake: FakeServer, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A walk of 50 folders, 30 entries in, with its helpers at work: (source, walk, the
    entries so far, its prefetcher, the ids of the sources closed from now on)."""
    closed = _helpers_closed(monkeypatch)
    fake.tree = {f"d{i:03d}": {f"f{j}": j for j in range(5)} for i in range(50)}
    src = make_source(fake)
    walk = src.walk()
    first = [next(walk) for _ in range(30)]
    (prefetcher,) = src._walks
    return src, walk, first, prefetcher, closed


def test_closing_the_walk_early_stops_the_helpers_and_closes_their_contexts(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, walk, _, prefetcher, closed = _walk_under_way(fake, monkeypatch)
    threads = list(prefetcher._threads)
    helpers = list(prefetcher.helpers)
    assert threads and helpers
    walk.close()
    assert not any(t.is_alive() for t in threads)
    assert {id(h) for h in helpers} <= closed
    assert len(src._walks) == 0
    src.close()


def test_an_abandoned_walk_generator_stops_its_helpers_when_collected(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, walk, _, prefetcher, closed = _walk_under_way(fake, monkeypatch)
    threads, helpers = list(prefetcher._threads), list(prefetcher.helpers)
    del walk, prefetcher
    gc.collect()
    assert not any(t.is_alive() for t in threads)
    assert {id(h) for h in helpers} <= closed
    src.close()


def test_closing_the_source_stops_the_helpers_of_its_walk(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, walk, first, prefetcher, closed = _walk_under_way(fake, monkeypatch)
    threads, helpers = list(prefetcher._threads), list(prefetcher.helpers)
    src.close()
    assert not any(t.is_alive() for t in threads)
    assert {id(h) for h in helpers} <= closed
    # The walk itself still finishes, listing the rest on the (reconnecting) source.
    rest = list(walk)
    expected, _ = plain_walk(fake, monkeypatch)
    assert first + rest == expected


# -- the C structures ---------------------------------------------------------------------


@pytest.mark.skipif(ctypes.sizeof(ctypes.c_void_p) != 8, reason="layout checked for 64-bit")
def test_the_ctypes_structures_match_libnfs_4_on_64_bit() -> None:
    assert ctypes.sizeof(_NfsStat64) == 17 * 8
    assert _NfsStat64.nfs_mode.offset == 16 and _NfsStat64.nfs_size.offset == 56
    assert _NfsStat64.nfs_mtime.offset == 88 and _NfsStat64.nfs_mtime_nsec.offset == 112
    assert ctypes.sizeof(_NfsDirent) == 160
    offsets = {name: getattr(_NfsDirent, name).offset for name in ("name", "type", "mode")}
    assert offsets == {"name": 8, "type": 24, "mode": 28}
    assert _NfsDirent.size.offset == 32 and _NfsDirent.mtime.offset == 56
    assert _NfsDirent.mtime_nsec.offset == 148
