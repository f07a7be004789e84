"""Files read over a ``Channel``: one compound per file, several files in flight.

A file is opened, read (its first ``FIRST_READ`` bytes) and closed in one compound
(CREATE + READ + CLOSE with POSTQUERY_ATTRIB): the CREATE answer gives the size and times
before the read, the CLOSE answer the ones after, so a small file costs one round trip and
its torn-read check costs nothing more. ``prefetch`` sends those compounds for the files
the copier announces, so the server works on the next files while this one is copied.

A file larger than the first read is opened again for the rest; the second CREATE must
show the size and times of the first (else the file changed: ``SourceFileChanged``), the
rest is read with ``READ_AHEAD`` requests in flight, and the CLOSE that ends it (sent by
``finish``) gives the times after the read.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass

from sharelift.errors import FileError, SourceFileChanged
from sharelift.storage.base import Fingerprint
from sharelift.storage.chunk_stream import Chunk, ChunkStream
from sharelift.storage.smb_fast import wire
from sharelift.storage.smb_fast.channel import Channel, Request

FIRST_READ = 1024 * 1024
CHUNK = 1024 * 1024  # READ size for the rest of a large file
READ_AHEAD = 8  # READ requests in flight for the rest of a large file
PREFETCH = 8  # files whose compounds may be in flight ahead of the one being read (as many
# as the copier announces: SmbSource.features.prefetch)
PREFETCH_BATCH = 4  # announced files whose compounds go out together
PREFETCH_RESERVE = 64  # credits a prefetch leaves for the file being read
FILE_ATTRIBUTE_DIRECTORY = 0x10
FILE_ATTRIBUTE_REPARSE_POINT = 0x400


@dataclass(frozen=True, slots=True)
class FirstAnswer:
    """What the compound of one file told: its data up to ``FIRST_READ``, the before and
    (for a file read whole) after fingerprints."""

    data: Chunk
    size: int
    attributes: int
    before: Fingerprint
    after: Fingerprint | None


@dataclass(frozen=True, slots=True)
class _Ahead:
    rel: str
    ids: list[int]


class FastReader:
    """Opens files of one share (below ``root``) over one channel."""

    def __init__(
        self, channel: Channel, to_wire: Callable[[str], str], to_ns: Callable[[int], int]
    ) -> None:
        self.channel = channel
        self._to_wire = to_wire  # relative path -> the share path the server knows
        self._to_ns = to_ns  # FILETIME -> ns since the epoch
        self._ahead: collections.deque[_Ahead] = collections.deque()
        self._queued: list[str] = []  # announced, not sent yet

    @property
    def alive(self) -> bool:
        return self.channel.alive

    def close(self) -> None:
        self._ahead.clear()
        self._queued.clear()
        self.channel.close()

    def abandon(self) -> None:
        self._ahead.clear()
        self._queued.clear()
        self.channel.abandon()

    # -- the first compound ----------------------------------------------------------

    def _first_requests(self, rel: str) -> list[Request]:
        length = self.channel.read_size(FIRST_READ)
        return [
            Request(wire.CREATE, wire.create_body(self._to_wire(rel))),
            Request(
                wire.READ,
                wire.read_body(wire.RELATED_FILE_ID, 0, length),
                wire.credit_charge(length),
            ),
            Request(wire.CLOSE, wire.close_body(wire.RELATED_FILE_ID)),
        ]

    def prefetch(self, rel: str) -> bool:
        """Queue ``rel``'s compound, sent with the next ones in one go (``PREFETCH_BATCH``
        at a time, or when a queued file is opened); False when the window is full or
        credits are short. Raises only what the channel raises."""
        if rel in self._queued or any(a.rel == rel for a in self._ahead):
            return True
        if len(self._ahead) + len(self._queued) >= PREFETCH:
            return False
        needed = (len(self._queued) + 1) * (wire.credit_charge(FIRST_READ) + 2)
        if self.channel.credits < needed + PREFETCH_RESERVE:
            self._flush()
            return False
        self._queued.append(rel)
        if len(self._queued) >= PREFETCH_BATCH:
            self._flush()
        return True

    def _flush(self) -> None:
        queued, self._queued = self._queued, []
        if not queued:
            return
        sent = self.channel.send_compounds(
            [self._first_requests(rel) for rel in queued], related=True
        )
        self._ahead.extend(_Ahead(rel, ids) for rel, ids in zip(queued, sent, strict=True))

    def first(self, rel: str) -> FirstAnswer | None:
        """Open, read and close ``rel`` (or take its prefetched answers). ``None`` when the
        file is a reparse point (a link, or a special file): the classic path decides."""
        if rel in self._queued:
            self._flush()
        ids = self._take_ahead(rel)
        if ids is None:
            ids = self.channel.send(self._first_requests(rel), related=True)
        created, read, closed = (self.channel.wait(i) for i in ids)
        created.raise_for_status()
        _fid, write, change, size, attributes = wire.create_answer(created.body)
        if attributes & FILE_ATTRIBUTE_REPARSE_POINT:
            return None
        data: Chunk
        if read.status == wire.STATUS_END_OF_FILE:
            data = b""
        else:
            read.raise_for_status()
            data = wire.read_answer(read.message)
        before = Fingerprint(size, self._to_ns(write), self._to_ns(change))
        after = None
        if closed.status == wire.STATUS_SUCCESS and len(data) >= size:
            found = wire.close_answer(closed.body)
            if found is not None:
                after = Fingerprint(found[2], self._to_ns(found[0]), self._to_ns(found[1]))
        return FirstAnswer(data, size, attributes, before, after)

    def _take_ahead(self, rel: str) -> list[int] | None:
        """The message ids of ``rel``'s prefetched compound; compounds announced before it
        and not opened are given up (their answers dropped as they come)."""
        if not any(a.rel == rel for a in self._ahead):
            return None
        while self._ahead:
            ahead = self._ahead.popleft()
            if ahead.rel == rel:
                return ahead.ids
            self.channel.forget(ahead.ids)
        return None

    # -- the rest of a large file --------------------------------------------------------

    def open_rest(self, rel: str, before: Fingerprint) -> bytes:
        """Open ``rel`` again for the bytes after the first read; its FileId."""
        (created_id,) = self.channel.send(
            [Request(wire.CREATE, wire.create_body(self._to_wire(rel)))]
        )
        created = self.channel.wait(created_id)
        created.raise_for_status()
        fid, write, change, size, _attributes = wire.create_answer(created.body)
        now = Fingerprint(size, self._to_ns(write), self._to_ns(change))
        if now.differs(before):
            self.close_quietly(fid)
            raise SourceFileChanged(rel, "the file changed while it was being read")
        return fid

    def send_read(self, fid: bytes, offset: int, length: int) -> tuple[int, int]:
        """Send one READ; (message id, the length asked, which credits may have cut)."""
        length = self.channel.read_size(length)
        (message_id,) = self.channel.send(
            [Request(wire.READ, wire.read_body(fid, offset, length), wire.credit_charge(length))]
        )
        return message_id, length

    def receive_read(self, message_id: int) -> Chunk:
        answer = self.channel.wait(message_id)
        if answer.status == wire.STATUS_END_OF_FILE:
            return b""
        answer.raise_for_status()
        return wire.read_answer(answer.message)

    def finish(self, fid: bytes) -> Fingerprint | None:
        """CLOSE ``fid``, returning the fingerprint the server reports after the close."""
        (closed_id,) = self.channel.send([Request(wire.CLOSE, wire.close_body(fid))])
        closed = self.channel.wait(closed_id)
        closed.raise_for_status()
        found = wire.close_answer(closed.body)
        if found is None:
            return None
        return Fingerprint(found[2], self._to_ns(found[0]), self._to_ns(found[1]))

    def close_quietly(self, fid: bytes) -> None:
        """CLOSE without waiting for the answer (dropped when it comes)."""
        self.channel.close_quietly(fid)


class FastStream(ChunkStream):
    """Bytes of one file: the first chunk came with the compound; the rest is read ahead."""

    def __init__(
        self,
        reader: FastReader,
        rel: str,
        first: FirstAnswer,
        on_error: Callable[[str, BaseException], FileError],
    ) -> None:
        super().__init__(first.data, first.size)
        self._reader = reader
        self._rel = rel
        self._before = first.before
        self._on_error = on_error
        self._fid: bytes | None = None
        self.opened: Fingerprint | None = first.before
        self.closed_with: Fingerprint | None = first.after

    def _fill(self) -> None:
        try:
            if self._fid is None:
                self._fid = self._reader.open_rest(self._rel, self._before)
            self._send_ahead()
            if not self._inflight:
                return
            message_id, wanted = self._inflight.popleft()
            data = self._reader.receive_read(message_id)
            if len(data) < wanted:
                self._eof = True  # shrank under us: stop here
            self._take(data)
            self._send_ahead()
        except FileError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise self._on_error(self._rel, exc) from None

    def _send_ahead(self) -> None:
        assert self._fid is not None
        while not self._eof and len(self._inflight) < READ_AHEAD and self._next < self._size:
            if self._inflight and self._reader.channel.credits < wire.credit_charge(CHUNK):
                return  # the answers in flight bring credits back
            message_id, length = self._reader.send_read(
                self._fid, self._next, min(CHUNK, self._size - self._next)
            )
            self._inflight.append((message_id, length))
            self._next += length

    def finish(self) -> Fingerprint | None:
        """The fingerprint after the read, once every byte was read (``None``: not known
        here, the caller asks the server)."""
        if self.closed_with is not None:
            return self.closed_with
        if self._fid is None or self._inflight or self._next < self._size or self._buf:
            return None
        fid, self._fid = self._fid, None
        self.closed_with = self._reader.finish(fid)
        return self.closed_with

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._drop_buffer()
        if self._inflight:
            self._reader.channel.forget([m for m, _ in self._inflight])
            self._inflight.clear()
        fid, self._fid = self._fid, None
        if fid is not None:
            self._reader.close_quietly(fid)
