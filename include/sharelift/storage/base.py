"""The one small storage interface every backend implements.

Sources (local folder, NFS export, SMB share, later object stores and URL lists) walk a
tree and open files as streams. Destinations (OSS, local folder) head, put, get, list and
delete objects. The engine only ever talks to these two classes, so a new backend is one
module and one line in the conformance suite (the idea of rclone's fstest).

Error contract (every backend, checked by ``tests/conformance``):

* ``Source.walk`` never raises for one bad entry: a folder it cannot list is yielded as an
  ``Entry`` with ``error`` set, and the walk goes on. Symlinks are yielded as
  ``EntryKind.SYMLINK`` and never followed. Empty folders are yielded as ``DIR``.
* ``Source.open``/``Source.stat`` raise ``SourceFileNotFound`` for a file that is gone,
  ``SourceFilePermissionDenied`` for one the server will not let us read, ``NotAFile``
  for a folder, symlink or special file. Never a bare library exception.
* ``Destination.put`` either stores the whole object or leaves nothing visible under the
  key (an existing object stays as it was). A put repeated with the same bytes is harmless.
  It raises ``SourceFileChanged`` when the stream gives a different number of bytes than
  announced, ``DestinationError`` when the destination fails.
* ``Destination.head`` returns ``None`` for a missing object; ``delete`` of a missing
  object is not an error.
* ``check()`` raises ``AddressError`` naming the address and the cause (unreachable,
  wrong credentials, missing export/share/bucket). No message carries a secret.
"""

from __future__ import annotations

import contextlib
import enum
import stat as stat_mod
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from sharelift.storage.retrying import RetryPolicy

ProgressCallback = Callable[[int], None]
"""Called with the number of bytes just transferred (a delta, not a total)."""


class EntryKind(enum.StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    OTHER = "other"  # fifo, socket, device: reported, never copied

    @classmethod
    def of_mode(cls, mode: int) -> EntryKind:
        """The kind of a POSIX ``st_mode`` (local folders and NFS give one)."""
        if stat_mod.S_ISREG(mode):
            return cls.FILE
        if stat_mod.S_ISDIR(mode):
            return cls.DIR
        if stat_mod.S_ISLNK(mode):
            return cls.SYMLINK
        return cls.OTHER


@dataclass(frozen=True, slots=True)
class Entry:
    """One thing found by a walk.

    ``path`` is relative to the source root, '/'-separated, without a leading '/'.
    ``mtime_ns`` is the last-modified time in nanoseconds since the epoch (UTC).
    ``error`` is set (and the other fields may be empty) when the entry could not be read,
    e.g. a folder the server refuses to list.
    """

    path: str
    kind: EntryKind
    size: int = 0
    mtime_ns: int = 0
    mode: int | None = None
    error: str | None = None

    @property
    def is_file(self) -> bool:
        return self.kind is EntryKind.FILE and self.error is None


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What shows that a file's bytes may have changed: size, mtime and change time (ns).

    The change time (NFS ctime, SMB ChangeTime, local ``st_ctime_ns``) also moves when a
    writer puts the old mtime back; ``None`` where it is not known, and then not compared.
    """

    size: int
    mtime_ns: int
    ctime_ns: int | None = None

    def differs(self, other: Fingerprint) -> bool:
        if (self.size, self.mtime_ns) != (other.size, other.mtime_ns):
            return True
        return (
            self.ctime_ns is not None
            and other.ctime_ns is not None
            and self.ctime_ns != other.ctime_ns
        )


class ReadStream(Protocol):
    """What ``Source.open`` returns: a binary stream that is also a context manager."""

    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...

    def __enter__(self) -> ReadStream: ...

    def __exit__(self, *exc: object) -> None: ...


@dataclass(frozen=True, slots=True)
class SourceFeatures:
    """What a source can do, advertised rather than probed with ``isinstance``.

    ``gil_bound``: much of a file's copy runs as Python under the GIL (smbprotocol builds
    and parses every message in Python; NFS files are small enough that the per-file Python
    work dominates), so the engine parallelises subtasks across processes, not threads.
    ``reports_symlinks``: the protocol shows symlinks as such (SMB servers usually resolve
    them on the server side, or hide the ones that point outside the share).
    ``read_chunk_size``: the read size the backend is fastest with.
    ``threaded_clones``: several ``clone()`` connections may run on threads of one process.
    ``prefetch``: how many files ahead the engine should announce with ``Source.prefetch``
    (0: the source gains nothing from it).
    ``hidden_kinds``: kinds of entries the server never shows this client, so a walk can
    neither migrate nor report them (Samba hides symlinks, special files and names that
    are not UTF-8 from SMB2 clients); the run's summary lists them.
    ``reads_ahead``: a stream of a large file reads ahead by itself (the SMB clients' READs
    in flight, answered on their receive thread; the kernel's read-ahead of a local file),
    so a read-ahead thread in front of it would only add a hand-off per chunk
    (``sharelift.transfer``).
    """

    gil_bound: bool = False
    reports_symlinks: bool = True
    read_chunk_size: int = 1024 * 1024
    threaded_clones: bool = True
    prefetch: int = 0
    hidden_kinds: tuple[str, ...] = ()
    reads_ahead: bool = False


class Source(ABC):
    """A tree of files to migrate: an NFS export, an SMB share, a local folder."""

    scheme: str = ""
    features: SourceFeatures = SourceFeatures()

    @abstractmethod
    def display_url(self, path: str = "") -> str:
        """``<scheme>://<host>/<share-or-export>/<path>``, without credentials (reports)."""

    @abstractmethod
    def check(self) -> None:
        """Raise ``AddressError`` unless the source is reachable and readable."""

    @abstractmethod
    def walk(self, top: str = "") -> Iterator[Entry]:
        """Yield every entry below ``top`` (relative), depth-first, names sorted per folder."""

    @abstractmethod
    def stat(self, path: str) -> Entry:
        """The entry for one path (symlinks not followed)."""

    @abstractmethod
    def open(self, path: str) -> ReadStream:
        """Open a regular file for reading."""

    def open_entry(self, entry: Entry) -> ReadStream:
        """Open a file the scan saw as ``entry`` (a regular file of ``entry.size`` bytes).

        A source may trust the scan instead of asking the server again (NFS saves a GETATTR
        per file); it must still refuse what is no longer a regular file, at the latest on
        the first read, and the caller still checks the size as it reads."""
        return self.open(entry.path)

    def opened(self, stream: ReadStream) -> Fingerprint | None:
        """The file's fingerprint as the open of ``stream`` saw it, when the open told it at
        no cost (``None``: the caller compares with the scan's size and mtime)."""
        found = getattr(stream, "opened", None)
        return found if isinstance(found, Fingerprint) else None

    def fingerprint(self, stream: ReadStream, path: str) -> Fingerprint:
        """The file's fingerprint now, asked of the server afresh while ``stream`` (read to
        its end) is still open: compared with the one before the read, it tells whether the
        bytes read may mix two versions of the file. Raises like ``stat``."""
        entry = self.stat(path)
        return Fingerprint(entry.size, entry.mtime_ns)

    def prefetch(self, paths: Sequence[str]) -> None:  # noqa: B027 - optional hook
        """A hint: these files will be opened next, in this order. A source whose protocol
        can keep several requests in flight may start opening and reading them now, and
        ``open`` takes the answer. Files announced but never opened cost nothing but the
        work done ahead. Never raises: problems show when the file is opened."""

    @abstractmethod
    def clone(self) -> Source:
        """A new, independent connection to the same source (one per copying thread:
        client contexts such as libnfs's or an SMB session are not thread-safe)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Safe to call twice."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What a destination knows of one stored object.

    ``source_mtime_ns`` is the source file's mtime that sharelift stored with the object
    (``None`` for an object sharelift did not write); the overwrite rule compares it.
    ``crc64`` is the destination's own CRC-64 when it keeps one (OSS does).
    """

    key: str
    size: int
    crc64: int | None = None
    source_mtime_ns: int | None = None
    mode: int | None = None
    last_modified_ns: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    # When the destination stored the object (OSS: its Last-Modified), whoever wrote it:
    # a resumed run tells its own unrecorded puts from an earlier run's objects by it.
    stored_at_ns: int | None = None


@dataclass(frozen=True, slots=True)
class PutResult:
    key: str
    size: int
    crc64: int
    multipart: bool = False
    resumed_bytes: int = 0  # bytes of parts already uploaded by an earlier, interrupted try
    etag: str | None = None  # the destination's tag of the stored object, when it has one


@dataclass(frozen=True, slots=True)
class IncompleteUpload:
    """A multipart upload that was started and neither completed nor aborted: its parts
    take space (and are billed) but no object shows them. ``key`` is relative to the
    destination's root; ``initiated_ns`` when the server tells it."""

    key: str
    upload_id: str
    initiated_ns: int | None = None


@dataclass(frozen=True, slots=True)
class TransferConfig:
    """How a destination moves bytes. Sizes in bytes.

    ``multipart_threshold``: objects at least this large go up in parts (resumable).
    ``part_size``: size of each part (OSS allows 100 KiB .. 5 GiB, at most 10,000 parts;
    larger objects get larger parts automatically).
    ``max_parallel_parts``: parts of one object in flight at once (threads: HTTP I/O and
    the CRC both release the GIL).
    ``checkpoint_dir``: where resumable uploads keep their progress; ``None`` = not resumable.
    ``retry``: how transient failures of the source and the destination are retried, per
    request and per file (``sharelift.storage.retrying``).
    """

    multipart_threshold: int = 64 * 1024 * 1024
    part_size: int = 16 * 1024 * 1024
    max_parallel_parts: int = 4
    checkpoint_dir: str | None = None
    retry: RetryPolicy = RetryPolicy()

    def __post_init__(self) -> None:
        from sharelift.errors import ConfigError

        if self.part_size < 100 * 1024:
            raise ConfigError("part_size", "must be at least 100 KiB (OSS minimum)")
        if self.multipart_threshold < self.part_size:
            raise ConfigError("multipart_threshold", "must be at least part_size")
        if not 1 <= self.max_parallel_parts <= 64:
            raise ConfigError("max_parallel_parts", "must be between 1 and 64")

    def part_size_for(self, size: int) -> int:
        """The part size for an object of ``size`` bytes, keeping within 10,000 parts."""
        part = self.part_size
        while size > part * 10_000:
            part *= 2
        return part


class Destination(ABC):
    """Where objects go: an OSS bucket (with prefix) or a local folder (with prefix).

    The destination owns its root: every key a caller passes (``head``, ``put``, ``list``...)
    is relative to it, and callers never add or strip the prefix. What the bucket calls
    the object is ``object_name(key)``; the bucket root itself (where the reports go:
    ``aliyun_mgw_import_report/`` whatever the prefix) is reached through ``at_root()``.
    """

    scheme: str = ""

    @abstractmethod
    def display_url(self, key: str = "") -> str:
        """``oss://bucket/prefix/key`` or ``file:///folder/prefix/key``, without credentials."""

    @abstractmethod
    def object_name(self, key: str) -> str:
        """The object's full name in the bucket (``prefix/key``): what the reports list."""

    @abstractmethod
    def at_root(self) -> Destination:
        """A new destination on the same bucket or folder whose root is the bucket root
        (no prefix). The caller closes it."""

    @abstractmethod
    def check(self) -> None:
        """Raise ``AddressError`` unless the destination is reachable and writable."""

    @abstractmethod
    def head(self, key: str) -> ObjectInfo | None: ...

    @abstractmethod
    def put(
        self,
        key: str,
        stream: BinaryIO | ReadStream,
        size: int,
        *,
        source_mtime_ns: int | None = None,
        mode: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> PutResult:
        """Store exactly ``size`` bytes read from ``stream``, computing CRC-64 on the fly."""

    def reads_ahead(self, size: int) -> bool:
        """Whether ``put`` of ``size`` bytes reads the source ahead by itself (a multipart
        upload reads the next part while earlier ones are sent), so that a read-ahead
        thread in front of it would only add buffers (``sharelift.transfer``)."""
        return False

    @abstractmethod
    def open(self, key: str) -> ReadStream:
        """Read an object back (verification, tests). Raises ``FileNotFoundError``."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in key order."""

    @abstractmethod
    def delete(self, key: str) -> None: ...

    def listed(self, keys: Sequence[str]) -> dict[str, ObjectInfo] | None:
        """Those of ``keys`` that exist, with size and ETag, by listing rather than a HEAD
        each; ``None`` when this destination has nothing cheaper than ``head`` (the caller
        then heads every key)."""
        return None

    def existing(self, keys: Sequence[str]) -> set[str] | None:
        """Which of ``keys`` exist (see ``listed``)."""
        found = self.listed(keys)
        return None if found is None else set(found)

    def abandon(self, key: str) -> None:  # noqa: B027 - optional hook
        """Give up the put of ``key`` for good (its file finally failed): abort a resumable
        upload left from it and forget its checkpoint, so that nothing of it stays behind.
        Not called when the process dies: then the next run resumes. May raise
        ``DestinationError`` (the caller keeps the file's own failure)."""

    def incomplete_uploads(self) -> Iterator[IncompleteUpload]:
        """The multipart uploads under this destination's root that were never completed
        nor aborted (``sharelift cleanup``). None where puts are never left half-done."""
        return iter(())

    def abort_upload(self, upload: IncompleteUpload) -> None:  # noqa: B027 - optional hook
        """Abort one of ``incomplete_uploads()``; an upload already gone is not an error."""

    @contextlib.contextmanager
    def batch(self) -> Iterator[Callable[[], None]]:
        """Puts made inside may defer their durability; the ``commit`` yielded makes every
        put that has returned durable. The engine commits before it records outcomes, so
        a file is never recorded as copied before its bytes are safe. By default every put
        is durable when it returns and ``commit`` does nothing."""
        yield lambda: None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Safe to call twice."""

    def __enter__(self) -> Destination:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_relative_path(path: str) -> str:
    """Normalise a path relative to a source's or destination's root ('/a//b/./c/' ->
    'a/b/c') and refuse anything that escapes the root ('..'). Every backend uses this one."""
    # Only '/' separates: a backslash is an ordinary character in POSIX names (and in names
    # an SMB server maps back from private-use code points).
    if path and path[0] not in "/." and path[-1] != "/" and "//" not in path and "/." not in path:
        # No empty name and none that starts with '.': already normal (the usual case, and
        # this runs several times per file copied).
        return path
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        from sharelift.errors import ConfigError

        raise ConfigError("path", f"must stay inside the source root, got {path!r}")
    return "/".join(parts)
