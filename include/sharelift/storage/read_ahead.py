"""Reading a large source file on a thread of its own while the destination writes.

One copy thread alternates between waiting on the source (an NFS READ, SMB reads) and
writing to the destination (page cache, a socket). Both release the GIL (libnfs through
ctypes, file and socket system calls), so a reader thread that stays a few chunks ahead
lets the two overlap. Only for files large enough to repay a thread (``MIN_SIZE``).

The CRC-64 of each chunk is computed on a third thread between the two (fastcrc releases
the GIL): the thread that puts pays only a combine per chunk (``read_crc``), and the reader
goes on reading meanwhile. On the reader's own thread the sum was measured to slow a copy
whose reads are its slowest side (``bench``'s CRC case); on the putting thread, one whose
writes are. The CRC is of the very ``bytes`` object handed on: what the destination is sent
is what was summed (proof of bytes); a stream's ``read_buffer`` may hand on a read-only
view instead, which it promises nothing writes into again (the SMB fast path's READ
answers), and which is passed on without a copy.

The source stream is used by the reader thread alone, and its owner closes it only after
``stop()`` returned (the threads have ended), so streams that are not thread-safe stay
safe. An error the reader meets is raised to the consumer at the point where its bytes
were due.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from sharelift.checksum import crc64
from sharelift.storage.base import ReadStream
from sharelift.storage.chunk_stream import Chunk, frozen

MIN_SIZE = 8 * 1024 * 1024
DEPTH = 4  # chunks summed and waiting for the consumer
RAW_DEPTH = 2  # chunks read and waiting to be summed
# memory: (DEPTH + RAW_DEPTH + 3) x chunk size per large file in flight, at most


class ReadAhead:
    """A ``ReadStream`` over ``stream`` whose chunks are read ahead, and summed, on threads.

    ``read(n)`` returns at most one chunk of ``chunk_size`` bytes (fewer at the end);
    ``read_crc(n)`` the same with the CRC-64 of what it returns; ``stop()`` ends the
    threads; the caller still closes ``stream``.
    """

    def __init__(self, stream: ReadStream, chunk_size: int, depth: int = DEPTH) -> None:
        self._stream = stream
        self._chunk_size = chunk_size
        self._raw: queue.Queue[Any] = queue.Queue(RAW_DEPTH)
        self._queue: queue.Queue[Any] = queue.Queue(depth)
        self._stop = threading.Event()
        self._pending = memoryview(b"")
        self._whole: Chunk | None = None
        self._whole_crc = 0  # of ``_whole``
        self._done = False
        self._threads = [
            threading.Thread(target=self._pump, name="sharelift-read-ahead", daemon=True),
            threading.Thread(target=self._sum, name="sharelift-read-ahead-crc", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _put(self, into: queue.Queue[Any], item: Any) -> bool:
        while not self._stop.is_set():
            try:
                into.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _pump(self) -> None:
        read_buffer = getattr(self._stream, "read_buffer", None)
        try:
            while not self._stop.is_set():
                if read_buffer is not None:
                    chunk = read_buffer(self._chunk_size)
                    if not frozen(chunk):
                        chunk = bytes(chunk)  # immutable: the bytes summed are the bytes sent
                else:
                    chunk = self._stream.read(self._chunk_size)
                    if not isinstance(chunk, bytes):
                        chunk = bytes(chunk)
                if not self._put(self._raw, chunk) or not chunk:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._put(self._raw, exc)

    def _sum(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._raw.get(timeout=0.1)
            except queue.Empty:
                continue
            if isinstance(item, BaseException):
                self._put(self._queue, item)
                return
            if not self._put(self._queue, (item, crc64(item))) or not item:
                return

    def read(self, size: int = -1, /) -> bytes:
        if size is None or size < 0:
            parts = []
            while chunk := self.read(self._chunk_size):
                parts.append(chunk)
            return b"".join(parts)
        out = self._next(size)[0]
        return out if isinstance(out, bytes) else out.tobytes()

    def read_buffer(self, size: int, /) -> Chunk:
        """As ``read``, but a whole chunk the stream gave as a read-only view stays one."""
        return self._next(size)[0]

    def read_crc(self, size: int, /) -> tuple[Chunk, int]:
        """Up to ``size`` bytes (as ``read_buffer``) and their CRC-64: computed on the
        summing thread when a whole chunk is returned (the usual case: callers ask for the
        chunk size), here for a piece of one."""
        out, whole = self._next(size)
        return out, self._whole_crc if whole else crc64(out)

    def _next(self, size: int) -> tuple[Chunk, bool]:
        """Up to ``size`` bytes, and whether they are a whole chunk of the reader thread."""
        if not self._pending:
            if self._done or size == 0:
                return b"", False
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._done = True
                raise item
            chunk, crc = item
            if not chunk:
                self._done = True
                return b"", False
            self._pending = memoryview(chunk)
            self._whole, self._whole_crc = chunk, crc
        out: Chunk
        if self._whole is not None and size >= len(self._pending):
            out, whole = self._whole, True  # the whole chunk: no copy
        else:
            out, whole = self._pending[:size].tobytes(), False
        self._whole = None
        self._pending = self._pending[len(out) :]
        return out, whole

    def stop(self) -> None:
        """End the threads (after the read the reader may be waiting on). Safe to call twice."""
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SumAside:
    """CRC-64 of a large file's chunks, summed on a thread of its own while the thread that
    hands them in writes them: off the copy's critical path with one hand-off per chunk
    that the putting thread never waits for (unless ``depth`` chunks are waiting), for
    streams that read ahead by themselves (``SourceFeatures.reads_ahead``) and so come
    without a ``ReadAhead`` to sum them. The chunks must be immutable (``bytes`` or a
    read-only view): what is summed is what is written. ``value`` waits for the sum;
    ``close()`` ends the thread (safe to call twice)."""

    def __init__(self, depth: int = DEPTH) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(depth)
        self._value = 0
        self._error: BaseException | None = None
        self._closed = False
        self.length = 0
        self._thread = threading.Thread(target=self._sum, name="sharelift-crc", daemon=True)
        self._thread.start()

    def update(self, data: Chunk) -> None:
        if data:
            self._queue.put(data)
            self.length += len(data)

    def _sum(self) -> None:
        value = 0
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    value = crc64(item, value)
                except BaseException as exc:  # noqa: BLE001 - raised by ``value``
                    self._error = exc
        self._value = value

    @property
    def value(self) -> int:
        self.close()
        if self._error is not None:
            raise self._error
        return self._value

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()
