"""Reading a large source file on a thread of its own while the destination writes.

One copy thread alternates between waiting on the source (an NFS READ, SMB reads) and
writing to the destination (page cache, a socket). Both release the GIL (libnfs through
ctypes, file and socket system calls), so a reader thread that stays a few chunks ahead
lets the two overlap. Only for files large enough to repay a thread (``MIN_SIZE``).

The source stream is used by the reader thread alone, and its owner closes it only after
``stop()`` returned (the thread has ended), so streams that are not thread-safe stay safe. An error the
reader meets is raised to the consumer at the point where its bytes were due.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from sharelift.storage.base import ReadStream

MIN_SIZE = 8 * 1024 * 1024
DEPTH = 4  # chunks read ahead (memory: DEPTH x chunk size per large file in flight)


class ReadAhead:
    """A ``ReadStream`` over ``stream`` whose chunks are read ahead on a thread.

    ``read(n)`` returns at most one chunk of ``chunk_size`` bytes (fewer at the end);
    ``stop()`` ends the thread; the caller still closes ``stream``.
    """

    def __init__(self, stream: ReadStream, chunk_size: int, depth: int = DEPTH) -> None:
        self._stream = stream
        self._chunk_size = chunk_size
        self._queue: queue.Queue[Any] = queue.Queue(depth)
        self._stop = threading.Event()
        self._pending = memoryview(b"")
        self._whole: bytes | None = None
        self._done = False
        self._thread = threading.Thread(target=self._pump, name="sharelift-read-ahead", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _pump(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = self._stream.read(self._chunk_size)
                if not self._put(chunk) or not chunk:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._put(exc)

    def read(self, size: int = -1, /) -> bytes:
        if size is None or size < 0:
            parts = []
            while chunk := self.read(self._chunk_size):
                parts.append(chunk)
            return b"".join(parts)
        if not self._pending:
            if self._done or size == 0:
                return b""
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._done = True
                raise item
            if not item:
                self._done = True
                return b""
            self._pending = memoryview(item)
            self._whole = item if isinstance(item, bytes) else bytes(item)
        if self._whole is not None and size >= len(self._pending):
            out: bytes = self._whole  # the whole chunk: no copy
        else:
            out = self._pending[:size].tobytes()
        self._whole = None
        self._pending = self._pending[len(out) :]
        return out

    def stop(self) -> None:
        """End the reader thread (after the read it may be waiting on). Safe to call twice."""
        self._stop.set()
        self._thread.join()

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
