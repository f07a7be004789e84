"""A local source reads, and a local destination writes, only below its folder: a folder
swapped for a symlink after the scan is an error for its files, never a way out. Each test
checks the outside folder's contents before and after."""

from __future__ import annotations

import gc
import io
import os
import shutil
import threading
from pathlib import Path

import pytest
from tests.folder_snapshot import snapshot

from sharelift.addresses import DestinationAddress, SourceAddress
from sharelift.engine.copier import run_subtask
from sharelift.engine.jobs import JobSpec
from sharelift.engine.manifest import Manifest
from sharelift.engine.partition import partition
from sharelift.engine.scan import scan
from sharelift.engine.state import StateStore
from sharelift.errors import DestinationError, NotAFile
from sharelift.storage import open_destination, open_source

JOB = JobSpec(name="contain-job", source="src", destination="dst")
SECRET = b"SECRET OUTSIDE THE FOLDER"
SWAPPED = "is a symbolic link now; not followed"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "f1.txt").write_bytes(SECRET)
    (folder / "f2.txt").write_bytes(SECRET)
    return folder


def local_source(root: Path):  # type: ignore[no-untyped-def]
    return open_source(SourceAddress(name="src", protocol="local", path=str(root)))


def local_destination(root: Path, prefix: str = ""):  # type: ignore[no-untyped-def]
    return open_destination(
        DestinationAddress(name="dst", kind="local", path=str(root), prefix=prefix)
    )


def test_a_source_folder_swapped_for_a_symlink_after_the_scan_fails_its_files(
    tmp_path: Path, outside: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "a").mkdir(parents=True)
    (src / "a" / "f1.txt").write_bytes(b"inside 1")
    (src / "a" / "f2.txt").write_bytes(b"inside 2")
    (src / "b.txt").write_bytes(b"inside b")
    dst.mkdir()
    before = snapshot(outside)
    state = StateStore(f"sqlite:///{tmp_path}/state.db")
    manifest = Manifest(state, JOB.name, "r1")
    with local_source(src) as source, local_destination(dst) as dest:
        scan(source, JOB, manifest)
        shutil.rmtree(src / "a")
        (src / "a").symlink_to(outside)  # the swap, after the scan
        (subtask,) = partition(manifest, 1000, 10**12)
        counts = run_subtask(JOB, "r1", subtask, manifest, source, dest, state)
    assert counts == {"copied": 1, "failed": 2}
    failed = {o["path"]: o["reason"] for o in state.iter_outcomes(JOB.name, "r1", status="failed")}
    assert set(failed) == {"a/f1.txt", "a/f2.txt"}
    assert all(f"a {SWAPPED}" in reason for reason in failed.values())
    assert all(SECRET not in data for data in snapshot(dst).values() if isinstance(data, bytes))
    assert snapshot(outside) == before


def test_a_deeper_source_folder_swapped_for_a_symlink_is_named_in_the_error(
    tmp_path: Path, outside: Path
) -> None:
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "a" / "b" / "f1.txt").write_bytes(b"inside")
    before = snapshot(outside)
    with local_source(src) as source:
        assert [e.path for e in source.walk() if e.is_file] == ["a/b/f1.txt"]
        shutil.rmtree(src / "a" / "b")
        (src / "a" / "b").symlink_to(outside)
        with pytest.raises(NotAFile, match=f"a/b {SWAPPED}"):
            source.open("a/b/f1.txt")
        with pytest.raises(NotAFile, match=f"a/b {SWAPPED}"):
            source.stat("a/b/f1.txt")
    assert snapshot(outside) == before


def test_a_source_folder_swapped_during_the_walk_is_an_error_and_not_listed(
    tmp_path: Path, outside: Path
) -> None:
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "0.txt").write_bytes(b"first")
    (src / "a" / "inside.txt").write_bytes(b"inside")
    before = snapshot(outside)
    with local_source(src) as source:
        entries = []
        for entry in source.walk():
            entries.append(entry)
            if entry.path == "0.txt":  # the root is listed; "a" is next
                shutil.rmtree(src / "a")
                (src / "a").symlink_to(outside)
    assert not [e.path for e in entries if e.path.startswith("a/")]
    errors = [e.error for e in entries if e.path == "a" and e.error]
    assert len(errors) == 1 and f"a {SWAPPED}" in errors[0]
    assert snapshot(outside) == before


def test_a_source_folder_swapped_while_its_files_are_read_never_reads_outside(
    tmp_path: Path, outside: Path
) -> None:
    """The folder's descriptor is kept between files: after the swap the next file comes
    from the folder that was moved away (inside), or fails; never from the symlink."""
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "a" / "f1.txt").write_bytes(b"inside 1")
    (src / "a" / "f2.txt").write_bytes(b"inside 2")
    before = snapshot(outside)
    with local_source(src) as source:
        with source.open("a/f1.txt") as f:
            assert f.read() == b"inside 1"
        (src / "a").rename(src / "a.moved")
        (src / "a").symlink_to(outside)
        with source.open("a/f2.txt") as f:
            assert f.read() == b"inside 2"
    assert snapshot(outside) == before


def test_a_destination_folder_that_is_a_symlink_is_never_written_through(
    tmp_path: Path, outside: Path
) -> None:
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "a").symlink_to(outside)
    before = snapshot(outside)
    with local_destination(dst) as dest:
        with pytest.raises(DestinationError, match=f"a {SWAPPED}"):
            dest.put("a/f1.txt", io.BytesIO(b"overwrite"), 9)
        with pytest.raises(DestinationError, match=f"a {SWAPPED}"):
            dest.put("a/new/deeper.txt", io.BytesIO(b"new"), 3)
        with pytest.raises(DestinationError, match=f"a {SWAPPED}"):
            dest.head("a/f1.txt")
        with pytest.raises(DestinationError, match=f"a {SWAPPED}"):
            dest.open("a/f1.txt")
        with pytest.raises(DestinationError, match=f"a {SWAPPED}"):
            dest.delete("a/f1.txt")
        assert [o.key for o in dest.list()] == []
        assert dest.listed(["a/f1.txt"]) in ({}, None)
    assert snapshot(outside) == before


def test_a_destination_prefix_folder_that_is_a_symlink_is_never_written_through(
    tmp_path: Path, outside: Path
) -> None:
    dst = tmp_path / "dst"
    (dst / "to").mkdir(parents=True)
    (dst / "to" / "p").symlink_to(outside)
    before = snapshot(outside)
    with local_destination(dst, prefix="to/p/") as dest:
        with pytest.raises(DestinationError, match=f"to/p {SWAPPED}"):
            dest.put("f1.txt", io.BytesIO(b"overwrite"), 9)
        with pytest.raises(DestinationError, match=f"to/p {SWAPPED}"):
            dest.list()
    assert snapshot(outside) == before


def test_a_destination_folder_swapped_between_puts_is_never_written_through(
    tmp_path: Path, outside: Path
) -> None:
    dst = tmp_path / "dst"
    dst.mkdir()
    before = snapshot(outside)
    with local_destination(dst) as dest:
        dest.put("a/f1.txt", io.BytesIO(b"first"), 5)
        (dst / "a").rename(dst / "a.moved")
        (dst / "a").symlink_to(outside)
        try:
            dest.put("a/f2.txt", io.BytesIO(b"second"), 6)
        except DestinationError as exc:
            assert SWAPPED in str(exc)
        other = local_destination(dst)  # a fresh one, with no folder kept open
        with pytest.raises(DestinationError, match=f"a {SWAPPED}"):
            other.put("a/f2.txt", io.BytesIO(b"second"), 6)
        other.close()
    assert snapshot(outside) == before
    assert (dst / "a.moved" / "f1.txt").read_bytes() == b"first"


def test_a_key_that_is_itself_a_symlink_is_replaced_not_followed(
    tmp_path: Path, outside: Path
) -> None:
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "f1.txt").symlink_to(outside / "f1.txt")
    before = snapshot(outside)
    with local_destination(dst) as dest:
        assert dest.head("f1.txt") is None
        dest.put("f1.txt", io.BytesIO(b"object"), 6)
    assert not (dst / "f1.txt").is_symlink()
    assert (dst / "f1.txt").read_bytes() == b"object"
    assert snapshot(outside) == before


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_folders_kept_open_by_finished_threads_are_closed(tmp_path: Path) -> None:
    """The copier starts a pool of threads per subtask; what each kept open must go with it."""
    dst = tmp_path / "dst"
    dst.mkdir()
    with local_destination(dst) as dest:
        baseline = open_fds()
        for round_ in range(5):
            threads = [
                threading.Thread(
                    target=dest.put,
                    args=(f"r{round_}/t{i}/x/y/z.txt", io.BytesIO(b"1"), 1),
                )
                for i in range(8)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        gc.collect()
        assert open_fds() <= baseline + 2
        assert len([o for o in dest.list()]) == 40
