"""The local destination's write loop: every byte of a large file, written as the reader
hands it (views included), with the kernel told to start the disk writes early."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from sharelift.addresses import DestinationAddress
from sharelift.checksum import crc64
from sharelift.storage import local_destination
from sharelift.storage.local_destination import LocalDestination


class Views(io.BytesIO):
    """Hands out read-only views of buffers of its own, as the SMB fast path does."""

    def read_buffer(self, size: int, /) -> memoryview:
        return memoryview(bytearray(super().read(size))).toreadonly()


def destination(tmp_path: Path) -> LocalDestination:
    return LocalDestination(DestinationAddress(name="dst", kind="local", path=str(tmp_path)))


@pytest.mark.parametrize("stream_kind", [io.BytesIO, Views])
def test_a_large_file_is_stored_exactly_with_its_crc64(
    tmp_path: Path, stream_kind: type[io.BytesIO]
) -> None:
    data = os.urandom(2 * local_destination.WRITEBACK_STEP + 54_321)
    with destination(tmp_path) as dst:
        result = dst.put("big.bin", stream_kind(data), len(data))
        info = dst.head("big.bin")
    assert (tmp_path / "big.bin").read_bytes() == data
    assert result.crc64 == crc64(data)
    assert info is not None and info.crc64 == crc64(data)


def test_the_disk_writes_of_a_large_file_start_while_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[tuple[int, int]] = []
    monkeypatch.setattr(
        local_destination,
        "_start_writeback",
        lambda fd, offset, length: started.append((offset, length)),
    )
    step = local_destination.WRITEBACK_STEP
    data = os.urandom(3 * step + 10)
    with destination(tmp_path) as dst:
        dst.put("big.bin", io.BytesIO(data), len(data))
    assert started == [(0, step), (step, step), (2 * step, step)]


def test_a_small_file_asks_for_no_early_disk_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[tuple[int, int]] = []
    monkeypatch.setattr(
        local_destination,
        "_start_writeback",
        lambda fd, offset, length: started.append((offset, length)),
    )
    with destination(tmp_path) as dst:
        dst.put("small.bin", io.BytesIO(b"x" * 1000), 1000)
    assert started == []
