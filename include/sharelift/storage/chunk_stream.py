"""A read stream over chunks that arrive whole, as SMB READ answers do.

Both SMB read paths (smbprotocol's and the fast one) get a file's first chunk with the open
and the rest as answers to READs kept in flight. What they share is here: ``read(n)``
hands a whole chunk on without a copy when the caller asks for at least that much, and
slices it otherwise; the subclass's ``_fill`` brings the next chunk (``_take``).

A chunk may be a read-only view into the buffer it was received in (the fast path's READ
answers): ``read_buffer`` hands it on as it is, ``read`` as ``bytes``.
"""

from __future__ import annotations

import collections
from typing import Any

CHUNK = 1024 * 1024

Chunk = bytes | memoryview  # bytes, or a read-only view nothing writes again


def frozen(chunk: object) -> bool:
    """``bytes``, or a read-only view, which is what a stream's ``read_buffer`` returns: a
    view its stream promises nothing writes into again, so what is summed on one thread is
    what another sends (proof of bytes)."""
    return isinstance(chunk, bytes) or (isinstance(chunk, memoryview) and chunk.readonly)


class ChunkStream:
    """``read(n)`` returns at most ``n`` bytes (fewer at a chunk boundary), ``b''`` at the
    end. The stream ends at ``size``, the size the file had when it was opened; a file
    that shrinks while it is read ends early (the copier's size check reports it)."""

    def __init__(self, first: Chunk, size: int) -> None:
        self._size = size
        self._buf = memoryview(first)
        self._whole: Chunk | None = first  # the chunk in _buf while none of it is taken
        self._next = len(first)  # offset of the next byte to request
        self._inflight: collections.deque[Any] = collections.deque()
        self._eof = len(first) >= size
        self._closed = False

    def _fill(self) -> None:
        """Bring the next chunk (``_take``), or none at the end."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _take(self, data: Chunk) -> None:
        self._buf = memoryview(data)
        self._whole = data

    def _drop_buffer(self) -> None:
        self._buf = memoryview(b"")
        self._whole = None

    def read(self, size: int = -1, /) -> bytes:
        if size is None or size < 0:
            parts = []
            while chunk := self.read(CHUNK):
                parts.append(chunk)
            return b"".join(parts)
        out = self.read_buffer(size)
        return out if isinstance(out, bytes) else out.tobytes()

    def read_buffer(self, size: int, /) -> Chunk:
        """As ``read``, but a whole chunk that came as a read-only view stays one (no copy)."""
        if self._closed:
            raise ValueError("read from a closed SMB stream")
        if size == 0:
            return b""
        if not self._buf:
            if self._eof and not self._inflight:
                return b""
            self._fill()
            if not self._buf:
                return b""
        out: Chunk
        if self._whole is not None and size >= len(self._buf):
            out = self._whole  # the whole chunk as received: no copy
        else:
            out = self._buf[:size].tobytes()
        self._whole = None
        self._buf = self._buf[len(out) :]
        return out

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.read_buffer(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def __enter__(self) -> ChunkStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
