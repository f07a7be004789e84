"""What a local destination keeps beside each file (the CRC-64, the source mtime and mode
that the overwrite rule and verify read back), on a real file system with xattrs."""

from __future__ import annotations

import io
import multiprocessing
import os
from pathlib import Path

import pytest

from sharelift.addresses import DestinationAddress
from sharelift.checksum import crc64
from sharelift.storage import local_destination
from sharelift.storage.local_destination import LocalDestination

MTIME = 1_700_000_000_123_456_789
MODE = 0o100640


def destination(root: Path) -> LocalDestination:
    return LocalDestination(DestinationAddress(name="dst", kind="local", path=str(root)))


def put(dest: LocalDestination, key: str, data: bytes) -> None:
    dest.put(key, io.BytesIO(data), len(data), source_mtime_ns=MTIME, mode=MODE)


def user_xattrs(path: Path) -> list[str]:
    return sorted(n for n in os.listxattr(path) if n.startswith("user.sharelift"))


def test_a_put_keeps_its_metadata_in_one_attribute_that_head_reads_back(tmp_path: Path) -> None:
    dest = destination(tmp_path)
    put(dest, "a/b.bin", b"payload")

    assert user_xattrs(tmp_path / "a" / "b.bin") == ["user.sharelift"]
    info = dest.head("a/b.bin")
    assert info is not None
    assert (info.size, info.crc64, info.source_mtime_ns, info.mode) == (
        7,
        crc64(b"payload"),
        MTIME,
        MODE,
    )


def test_the_attribute_fits_in_the_inode_so_a_small_file_takes_one_block(tmp_path: Path) -> None:
    dest = destination(tmp_path)
    put(dest, "small.bin", b"x" * 100)
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x" * 100)

    assert os.stat(tmp_path / "small.bin").st_blocks == os.stat(plain).st_blocks


def test_head_reads_the_three_attributes_of_objects_written_by_earlier_versions(
    tmp_path: Path,
) -> None:
    old = tmp_path / "old.bin"
    old.write_bytes(b"old bytes")
    os.utime(old, ns=(MTIME, MTIME))
    os.setxattr(old, "user.sharelift.crc64", str(crc64(b"old bytes")).encode())
    os.setxattr(old, "user.sharelift.mtime_ns", str(MTIME).encode())
    os.setxattr(old, "user.sharelift.mode", str(MODE).encode())

    info = destination(tmp_path).head("old.bin")

    assert info is not None
    assert (info.crc64, info.source_mtime_ns, info.mode) == (crc64(b"old bytes"), MTIME, MODE)


def test_an_old_object_rewritten_in_place_has_its_crc_computed_again(tmp_path: Path) -> None:
    old = tmp_path / "old.bin"
    old.write_bytes(b"new bytes")  # the kept CRC and mtime describe other bytes
    os.setxattr(old, "user.sharelift.crc64", str(crc64(b"old bytes")).encode())
    os.setxattr(old, "user.sharelift.mtime_ns", str(MTIME).encode())

    info = destination(tmp_path).head("old.bin")

    assert info is not None and info.crc64 == crc64(b"new bytes")


def test_a_put_without_mtime_or_mode_keeps_the_crc_alone(tmp_path: Path) -> None:
    dest = destination(tmp_path)
    dest.put("bare.bin", io.BytesIO(b"bare"), 4)

    info = dest.head("bare.bin")

    assert info is not None
    assert info.crc64 == crc64(b"bare") and info.mode is None
    assert info.source_mtime_ns == os.stat(tmp_path / "bare.bin").st_mtime_ns


def test_a_leftover_temporary_file_under_the_next_name_does_not_stop_a_put(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = iter(["taken", "taken", "free"])
    monkeypatch.setattr(local_destination._TEMP_NAMES, "next", lambda: next(names))
    (tmp_path / f".k.bin{local_destination.TMP_MARK}taken").write_bytes(b"leftover")
    dest = destination(tmp_path)

    put(dest, "k.bin", b"kept")

    assert (tmp_path / "k.bin").read_bytes() == b"kept"
    assert not (tmp_path / f".k.bin{local_destination.TMP_MARK}free").exists()


def _child_names(queue: multiprocessing.Queue[list[str]]) -> None:
    queue.put([local_destination._TEMP_NAMES.next() for _ in range(3)])


def test_temporary_names_differ_within_a_process_and_in_a_forked_child() -> None:
    mine = [local_destination._TEMP_NAMES.next() for _ in range(3)]
    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[list[str]] = ctx.Queue()
    child = ctx.Process(target=_child_names, args=(queue,))
    child.start()
    theirs = queue.get(timeout=30)
    child.join(timeout=30)

    assert len(set(mine + theirs)) == 6
