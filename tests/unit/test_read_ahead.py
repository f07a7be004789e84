"""ReadAhead: a large file's chunks are read on a thread while the destination writes."""

from __future__ import annotations

import io
import os
import threading

import pytest

from sharelift.errors import SourceFileChanged
from sharelift.storage.read_ahead import ReadAhead
from sharelift.storage.streaming import ExactReader


class Source(io.BytesIO):
    """A stream that records which threads read it and can fail after some bytes."""

    def __init__(self, data: bytes, fail_after: int | None = None) -> None:
        super().__init__(data)
        self.threads: set[int] = set()
        self.fail_after = fail_after

    def read(self, size: int | None = -1, /) -> bytes:
        self.threads.add(threading.get_ident())
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise SourceFileChanged("f", "source file was deleted or replaced while being read")
        return super().read(size)


def test_every_byte_arrives_in_order_through_an_exact_reader() -> None:
    data = os.urandom(5 * 65536 + 123)
    source = Source(data)
    ahead = ReadAhead(source, 65536)
    reader = ExactReader(ahead, len(data), "f", chunk_size=65536)
    try:
        got = reader.read_exact(len(data))
        reader.finish()
    finally:
        ahead.stop()
    assert got == data
    assert threading.get_ident() not in source.threads  # only the reader thread read it
    assert len(source.threads) == 1


def test_reads_of_any_size_return_the_whole_stream() -> None:
    data = os.urandom(100_000)
    ahead = ReadAhead(Source(data), 4096)
    parts = []
    while chunk := ahead.read(1000):
        parts.append(chunk)
    ahead.stop()
    assert b"".join(parts) == data


def test_an_error_of_the_source_is_raised_where_its_bytes_were_due() -> None:
    ahead = ReadAhead(Source(b"x" * 10_000, fail_after=4096), 4096)
    assert ahead.read(4096) == b"x" * 4096
    with pytest.raises(SourceFileChanged):
        ahead.read(4096)
    assert ahead.read(4096) == b""
    ahead.stop()


def test_stopping_early_ends_the_thread_without_reading_everything() -> None:
    source = Source(b"y" * (1 << 20))
    ahead = ReadAhead(source, 1024, depth=2)
    assert ahead.read(1024) == b"y" * 1024
    ahead.stop()
    ahead.stop()  # twice is harmless
    assert source.tell() < 1 << 20  # the bounded queue held the reader back
    assert not any(t.name.startswith("sharelift-read-ahead") for t in threading.enumerate())


def test_the_crc_of_chunks_read_ahead_is_summed_off_the_putting_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The thread that puts only combines CRCs: every pass over the bytes runs on the
    read-ahead's summing thread (not the one that reads either), and the CRC is still that
    of every byte."""
    from sharelift import checksum
    from sharelift.storage import read_ahead, streaming

    summed_on: set[str] = set()
    real = checksum.crc64

    def recording(data: bytes, initial: int = 0) -> int:
        summed_on.add(threading.current_thread().name)
        return real(data, initial)

    monkeypatch.setattr(read_ahead, "crc64", recording)
    monkeypatch.setattr(checksum, "crc64", recording)  # what Crc64.update calls
    monkeypatch.setattr(streaming, "Crc64", checksum.Crc64)
    data = os.urandom(7 * 65536 + 99)
    ahead = ReadAhead(Source(data), 65536)
    reader = ExactReader(ahead, len(data), "f", chunk_size=65536)
    try:
        got = b"".join(iter(lambda: reader.read(65536), b""))
        crc = reader.finish()
    finally:
        ahead.stop()
    assert got == data
    assert crc == real(data)
    assert summed_on == {"sharelift-read-ahead-crc"}


@pytest.mark.parametrize("part", [4 * 4096, 3 * 4096 + 100])
def test_parts_come_with_the_crc_of_their_bytes(part: int) -> None:
    """A multipart upload's parts: aligned on the chunks read ahead or not."""
    from sharelift.checksum import crc64

    data = os.urandom(10 * 4096 + 7)
    ahead = ReadAhead(Source(data), 4096)
    reader = ExactReader(ahead, len(data), "f", chunk_size=4096, track_crc=False)
    try:
        offset = 0
        while offset < len(data):
            pieces, crc = reader.read_pieces(part)
            got = b"".join(pieces)
            assert got == data[offset : offset + part]
            assert crc == crc64(got)
            offset += len(got)
        reader.finish()
    finally:
        ahead.stop()


def test_parts_of_a_plain_stream_leave_the_crc_to_the_caller() -> None:
    reader = ExactReader(io.BytesIO(b"z" * 10_000), 10_000, "f", chunk_size=4096)
    pieces, crc = reader.read_pieces(6000)
    assert b"".join(pieces) == b"z" * 6000
    assert crc is None


class Views(io.BytesIO):
    """A stream whose ``read_buffer`` hands out read-only views of buffers of its own (as
    the SMB fast path hands on its READ answers), or writable ones when told to."""

    def __init__(self, data: bytes, *, writable: bool = False) -> None:
        super().__init__(data)
        self.writable = writable
        self.handed: list[memoryview] = []

    def read_buffer(self, size: int, /) -> memoryview:
        view = memoryview(bytearray(super().read(size)))
        view = view if self.writable else view.toreadonly()
        self.handed.append(view)
        return view


def test_read_only_views_are_passed_on_without_a_copy() -> None:
    data = os.urandom(5 * 4096 + 3)
    source = Views(data)
    ahead = ReadAhead(source, 4096)
    reader = ExactReader(ahead, len(data), "f", chunk_size=4096)
    try:
        got = [reader.read_buffer(4096) for _ in range(6)]
        crc = reader.finish()
    finally:
        ahead.stop()
    from sharelift.checksum import crc64

    assert b"".join(got) == data
    assert crc == crc64(data)
    assert all(g is h for g, h in zip(got, source.handed, strict=False))  # no copy


def test_a_writable_view_is_copied_before_it_is_summed() -> None:
    """Bytes someone may still change are frozen first: what is summed is what is sent."""
    data = os.urandom(3 * 4096)
    source = Views(data, writable=True)
    ahead = ReadAhead(source, 4096)
    try:
        chunk = ahead.read_buffer(4096)
    finally:
        ahead.stop()
    assert isinstance(chunk, bytes)
    assert chunk == data[:4096]


def test_read_returns_bytes_even_when_the_stream_gives_views() -> None:
    data = os.urandom(2 * 4096)
    ahead = ReadAhead(Views(data), 4096)
    try:
        first = ahead.read(4096)
    finally:
        ahead.stop()
    assert type(first) is bytes
    assert first == data[:4096]


def test_a_large_file_summed_aside_gets_the_crc_of_every_byte_off_the_putting_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stream that reads ahead by itself comes without a read-ahead thread: the put's
    reader hands each chunk to a summing thread and writes it meanwhile."""
    from sharelift.checksum import crc64
    from sharelift.storage import read_ahead

    summed_on: set[str] = set()
    real = read_ahead.crc64

    def recording(data: bytes, initial: int = 0) -> int:
        summed_on.add(threading.current_thread().name)
        return real(data, initial)

    monkeypatch.setattr(read_ahead, "crc64", recording)
    data = os.urandom(read_ahead.MIN_SIZE + 12_345)
    reader = ExactReader(io.BytesIO(data), len(data), "f", sum_aside=True)
    try:
        got = b"".join(iter(lambda: reader.read_buffer(1 << 20), b""))
        crc = reader.finish()
    finally:
        reader.close()
    assert got == data
    assert crc == crc64(data)
    assert summed_on == {"sharelift-crc"}
    assert not any(t.name == "sharelift-crc" for t in threading.enumerate())


def test_a_reader_closed_before_the_end_ends_its_summing_thread() -> None:
    from sharelift.storage import read_ahead

    data = b"q" * (read_ahead.MIN_SIZE + 1)
    reader = ExactReader(io.BytesIO(data), len(data), "f", sum_aside=True)
    reader.read(1 << 20)
    reader.close()
    reader.close()  # twice is harmless
    assert not any(t.name == "sharelift-crc" for t in threading.enumerate())


def test_a_small_file_is_summed_on_the_spot() -> None:
    reader = ExactReader(io.BytesIO(b"s" * 1000), 1000, "f", sum_aside=True)
    assert reader.read(1000) == b"s" * 1000
    reader.finish()
    assert not any(t.name == "sharelift-crc" for t in threading.enumerate())
