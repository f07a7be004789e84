"""Reading exactly the announced bytes from a source stream, with CRC-64 on the way.

Every destination needs the same three things from a source stream: read it in the chunk
size the source is fastest with (an SMB or NFS read per 8 KiB would be ruinous), compute
CRC-64 once as the bytes pass, and notice when the file is not the size the scan saw (it
changed or was truncated while we read it). ``ExactReader`` does that once for all of them.

A stream that sums its chunks itself on another thread (``read_ahead.ReadAhead``, through
``read_crc``) spares the putting thread the pass over the bytes: the reader then only
combines the CRCs it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

from sharelift.checksum import Crc64, crc64, crc64_combine
from sharelift.errors import SourceFileChanged
from sharelift.storage.base import ProgressCallback, ReadStream
from sharelift.storage.chunk_stream import Chunk, frozen
from sharelift.storage.read_ahead import MIN_SIZE, SumAside

DEFAULT_CHUNK = 1024 * 1024


class ExactReader:
    """Reads ``size`` bytes from ``stream`` and raises ``SourceFileChanged`` on any mismatch.

    ``read(n)`` serves callers that ask for small pieces (http.client asks for 8-16 KiB)
    from a buffer filled with ``chunk_size`` reads of the source. ``__len__`` lets HTTP
    clients send a Content-Length instead of chunked encoding.
    """

    def __init__(
        self,
        stream: BinaryIO | ReadStream,
        size: int,
        path: str,
        *,
        chunk_size: int = DEFAULT_CHUNK,
        progress: ProgressCallback | None = None,
        track_crc: bool = True,
        sum_aside: bool = False,
    ) -> None:
        """``track_crc=False`` when the caller sums CRCs itself (per part, for multipart).
        ``sum_aside``: a large file's CRC-64 is summed on a thread of its own
        (``SumAside``) unless the stream sums its chunks itself; the caller then
        calls ``close()`` when it is done, whatever happened."""
        self._stream = stream
        self._track_crc = track_crc
        self._pulled = 0
        self.size = size
        self.path = path
        self._read_crc: Callable[[int], tuple[Chunk, int]] | None = getattr(
            stream, "read_crc", None
        )
        self.crc: Crc64 | SumAside = (
            SumAside()
            if sum_aside and track_crc and self._read_crc is None and size >= MIN_SIZE
            else Crc64()
        )
        self._chunk_size = chunk_size
        self._progress = progress
        self._buf = memoryview(b"")
        self._whole: Chunk | None = None  # the chunk in _buf while none of it is taken
        self._whole_crc: int | None = None  # its CRC-64, when the stream gave it
        self._remaining = size  # bytes not yet pulled from the source
        self._read_buffer: Callable[[int], Chunk] | None = getattr(stream, "read_buffer", None)

    def __len__(self) -> int:
        return self.size

    @property
    def consumed(self) -> int:
        """Bytes handed out so far."""
        return self._pulled - len(self._buf)

    def _fill(self) -> None:
        want = min(self._chunk_size, self._remaining)
        data_crc: int | None = None
        data: Chunk
        if not want:
            data = b""
        elif self._read_crc is not None:
            data, data_crc = self._read_crc(want)
        elif self._read_buffer is not None:
            data = self._read_buffer(want)
        else:
            data = self._stream.read(want)
        if not isinstance(data, bytes) and not (self._read_buffer is not None and frozen(data)):
            data = bytes(data)  # immutable before it is summed: what is summed is what is sent
        if not data and self._remaining:
            raise SourceFileChanged(
                self.path,
                f"source file shrank while being read: got {self.size - self._remaining} of "
                f"{self.size} bytes",
            )
        if len(data) > want:  # a stream that ignores the size hint
            raise SourceFileChanged(self.path, "source stream returned more bytes than asked")
        self._remaining -= len(data)
        self._pulled += len(data)
        if self._track_crc:
            if data_crc is None:
                self.crc.update(data)
            else:
                assert isinstance(self.crc, Crc64)  # a stream that sums is never summed aside
                self.crc.extend(data_crc, len(data))
        if self._progress is not None and data:
            self._progress(len(data))
        self._buf = memoryview(data)
        self._whole = data
        self._whole_crc = data_crc
        if self._remaining == 0:
            self._check_eof()

    def _take(self, n: int) -> tuple[Chunk, int | None]:
        """Up to ``n`` buffered bytes; the chunk itself (no copy) when all of it is taken,
        with its CRC-64 when the stream gave it."""
        crc = None
        out: Chunk
        if self._whole is not None and n >= len(self._buf):
            out = self._whole
            crc = self._whole_crc
        else:
            out = self._buf[:n]
        self._whole = None
        self._buf = self._buf[len(out) :]
        return out, crc

    def _check_eof(self) -> None:
        extra = self._stream.read(1)
        if extra:
            raise SourceFileChanged(
                self.path, f"source file grew while being read: more than {self.size} bytes"
            )

    def read(self, n: int = -1, /) -> bytes:
        if n is None or n < 0:
            return self.read_exact(len(self._buf) + self._remaining)
        out = self.read_buffer(n)
        return out if isinstance(out, bytes) else out.tobytes()

    def read_buffer(self, n: int, /) -> Chunk:
        """As ``read``, without the copy into ``bytes`` of a piece of a chunk or of a chunk
        the stream gave as a read-only view: for a caller that writes it out at once."""
        if not self._buf:
            if self._remaining == 0:
                return b""
            self._fill()
        return self._take(n)[0]

    def read_exact(self, n: int) -> bytes:
        """Exactly ``n`` bytes (or what is left)."""
        pieces, _ = self._gather(n, with_crc=False)
        if len(pieces) == 1:
            return pieces[0]
        return b"".join(pieces)

    def read_pieces(self, n: int) -> tuple[list[bytes], int | None]:
        """Exactly ``n`` bytes (or what is left) as the chunks they were read in: one part
        of a multipart upload, sent chunk after chunk without a copy into one buffer
        (which would hold the part twice). With their CRC-64 when the stream summed every
        chunk (a read-ahead thread did), else ``None``: the caller sums them where it
        costs the copy least."""
        return self._gather(n, with_crc=True)

    def _gather(self, n: int, *, with_crc: bool) -> tuple[list[bytes], int | None]:
        pieces: list[bytes] = []
        # Only a stream that sums its chunks makes the part's CRC cheap here: the pieces
        # of a chunk cut at a part's edge are summed on the spot.
        crc: int | None = 0 if with_crc and self._read_crc is not None else None
        need = n
        while need > 0:
            if not self._buf:
                if self._remaining == 0:
                    break
                self._fill()
            piece, piece_crc = self._take(need)
            data = piece if isinstance(piece, bytes) else piece.tobytes()
            pieces.append(data)
            need -= len(data)
            if crc is not None:
                if piece_crc is None:
                    piece_crc = crc64(data)
                crc = crc64_combine(crc, piece_crc, len(data))
        return pieces, crc

    def finish(self) -> int:
        """Check that every byte was read (and no more exist); return the CRC-64."""
        if self._buf or self._remaining:
            raise SourceFileChanged(self.path, "not all bytes of the source file were sent")
        if self.size == 0:
            self._check_eof()
        return self.crc.value

    def close(self) -> None:
        """End the summing thread, if any (``finish`` has, when it returned)."""
        if isinstance(self.crc, SumAside):
            self.crc.close()
