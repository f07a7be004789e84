"""A local folder as a destination: NAS->NAS copies, tests, and a baseline for benchmarks.

Layout: the folder plays the bucket; a key ``a/b.txt`` is the file ``<path>/<prefix>a/b.txt``.
What OSS keeps as object metadata we keep in one extended attribute (``user.sharelift``):
the CRC-64 of the bytes written and the source mtime/mode. One short attribute fits in the
inode on ext4 (about 90 bytes free there); the three of earlier versions
(``user.sharelift.crc64``, ``.mtime_ns``, ``.mode``) did not, and cost every file a
block of its own, written on each sync. ``head`` still reads the three, so objects written by
earlier versions keep their metadata. The file's own mtime is also set to the source mtime,
so a file system without xattrs still supports the overwrite rule (and the CRC is then
computed on ``head``, which is slower but correct).

A put writes a hidden temporary file in the target folder, fsyncs it and renames it over
the key, so a crash never leaves a partial file under a real name.

Inside ``batch()`` (the engine's copy loop) the fsync per file is replaced by one
``syncfs`` per commit, which the engine calls before it records the batch's outcomes: an
fsync per small file cost more than everything else of the copy (see the durable ``cp``
floor in ``bench/results``). The rename still makes each file
appear whole to a reader; after a power loss an unrecorded file may be short, and the next
run re-copies it because its size differs.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import errno
import itertools
import os
import secrets
import stat as stat_mod
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import BinaryIO

from sharelift.addresses import DestinationAddress
from sharelift.checksum import Crc64
from sharelift.errors import AddressError, ConfigError, DestinationError
from sharelift.storage.base import (
    Destination,
    ObjectInfo,
    ProgressCallback,
    PutResult,
    ReadStream,
    TransferConfig,
    check_relative_path,
)
from sharelift.storage.beneath import Beneath, SymlinkNotFollowed
from sharelift.storage.streaming import ExactReader

TMP_MARK = ".sharelift-tmp-"
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
XATTR = "user.sharelift"  # "<crc64>:<mtime_ns>:<mode>" in hex, the last two may be empty
# The layout of earlier versions, still read by ``head``.
XATTR_CRC = "user.sharelift.crc64"
XATTR_MTIME = "user.sharelift.mtime_ns"
XATTR_MODE = "user.sharelift.mode"
WRITEBACK_STEP = 8 * 1024 * 1024  # bytes of a file written between two writeback starts


class _TempNames:
    """Suffixes for temporary file names: a random prefix per process and a counter.

    A name only has to differ from every other temporary file in the same folder, and the
    create uses ``O_EXCL``, so a clash is an ``EEXIST`` (``put`` then takes the next name),
    never two writers in one file. The counter makes the names of one process distinct
    (``next`` on ``itertools.count`` is atomic under the GIL); the random prefix, drawn
    again in a forked child, keeps them apart from other processes' and from the leftovers of
    a killed run. Eight random bytes per file (``secrets.token_hex``) cost a system call
    and a ``SystemRandom`` object each time for no more safety than this.
    """

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._prefix = secrets.token_hex(4)
        self._count = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._count):x}"


_TEMP_NAMES = _TempNames()
_TEMP_TRIES = 3


class LocalDestination(Destination):
    scheme = "file"

    def __init__(self, address: DestinationAddress, transfer: TransferConfig | None = None) -> None:
        self.address = address
        self.transfer = transfer or TransferConfig()
        self.root = os.path.normpath(address.path)
        self.base = os.path.join(self.root, address.prefix) if address.prefix else self.root
        # Every path is opened below the root one name at a time, never through a symlink
        # (a folder swapped for one is an error, not a way out); the prefix is names too.
        self._beneath = Beneath(self.root)
        self._prefix = address.prefix.rstrip("/")
        self._batched = 0  # open ``batch()`` contexts: puts skip their own fsync
        self._batch_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalDestination({self.address.name!r}, {self.base!r})"

    def _rel(self, key: str) -> str:
        """The key's path below the root (prefix included)."""
        try:
            rel = check_relative_path(key)
        except ConfigError:
            rel = ""
        if not rel or rel != key.strip("/") or key.endswith("/"):
            raise DestinationError(key, "invalid object name for a local folder")
        return f"{self._prefix}/{rel}" if self._prefix else rel

    def close(self) -> None:
        self._beneath.close()

    def display_url(self, key: str = "") -> str:
        return f"file://{self.base.rstrip('/')}/{key}"

    def object_name(self, key: str) -> str:
        return f"{self.address.prefix}{key}"

    def at_root(self) -> LocalDestination:
        return LocalDestination(dataclasses.replace(self.address, prefix=""), self.transfer)

    def check(self) -> None:
        if not os.path.isdir(self.root):
            raise AddressError(self.address.name, f"folder {self.root} does not exist")
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise AddressError(self.address.name, f"folder {self.root} is not writable")

    def head(self, key: str) -> ObjectInfo | None:
        rel = self._rel(key)
        try:
            # O_NONBLOCK: a FIFO put in the file's place must not hang the open.
            fd = self._beneath.open(rel, os.O_RDONLY | os.O_NONBLOCK)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if isinstance(exc, SymlinkNotFollowed) and exc.where == rel:
                return None  # the key itself is a symlink: not an object (a put replaces it)
            raise DestinationError(key, f"cannot read file: {_why(exc)}") from None
        try:
            st = os.fstat(fd)
            if not stat_mod.S_ISREG(st.st_mode):
                return None
            crc, mtime, mode = _get_metadata(fd)
            if crc is None or (mtime is not None and mtime != st.st_mtime_ns):
                # No CRC kept, or the file was written since our put (which set its mtime to
                # the source's): the kept CRC may describe other bytes, so read the file.
                crc = _crc_of_file(fd)
        finally:
            os.close(fd)
        return ObjectInfo(
            key=key,
            size=st.st_size,
            crc64=crc,
            source_mtime_ns=mtime if mtime is not None else st.st_mtime_ns,
            mode=mode,
            last_modified_ns=st.st_ctime_ns,
            etag=_etag(st),
            stored_at_ns=st.st_ctime_ns,
        )

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
        folder, name = self._folder_of(key, create=True)
        tmp, fd = _create_temp(key, folder, name)
        reader = ExactReader(stream, size, key, progress=progress, sum_aside=True)
        try:
            try:
                _write_file(fd, reader, self.transfer.part_size)
                crc = reader.finish()
                if not self._batched:
                    os.fsync(fd)
                if source_mtime_ns is not None:
                    os.utime(fd, ns=(source_mtime_ns, source_mtime_ns))
                st = os.fstat(fd)
                _set_metadata(fd, crc, source_mtime_ns, mode)
            finally:
                os.close(fd)
            # renameat: replaces whatever is at ``name`` (a symlink too) without following it
            os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException as exc:
            _silent_unlink(tmp, folder)
            if isinstance(exc, OSError):
                raise DestinationError(key, f"cannot write file: {_why(exc)}") from None
            raise
        finally:
            reader.close()
        return PutResult(key=key, size=size, crc64=crc, etag=_etag(st))

    def _folder_of(self, key: str, *, create: bool = False) -> tuple[int, str]:
        """(descriptor of the folder holding ``key``, the key's last name); the folders
        are made when ``create`` and missing. The descriptor belongs to ``Beneath``."""
        try:
            return self._beneath.parent(self._rel(key), create=create)
        except OSError as exc:
            raise DestinationError(
                key, f"cannot {'create' if create else 'open'} folder: {_why(exc)}"
            ) from None

    @contextlib.contextmanager
    def batch(self) -> Iterator[Callable[[], None]]:
        with self._batch_lock:
            self._batched += 1
        try:
            yield self._sync
        finally:
            try:
                self._sync()
            finally:
                with self._batch_lock:
                    self._batched -= 1

    def _sync(self) -> None:
        """Flush every file written so far on the destination's file system to disk."""
        if os.path.isdir(self.root):
            _syncfs(self.root)

    def open(self, key: str) -> ReadStream:
        """Raises ``FileNotFoundError`` for a missing key, like ``open``."""
        try:
            fd = self._beneath.open(self._rel(key), os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            raise FileNotFoundError(errno.ENOENT, "no such object", key) from None
        except OSError as exc:
            raise DestinationError(key, f"cannot read file: {_why(exc)}") from None
        return os.fdopen(fd, "rb")  # type: ignore[return-value]

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        found: list[ObjectInfo] = []
        try:
            top = self._beneath.listing(self._prefix)
        except (FileNotFoundError, NotADirectoryError):
            return iter(())
        except OSError as exc:
            raise DestinationError(prefix, f"cannot list folder: {_why(exc)}") from None
        try:
            # fwalk: descriptors all the way down, symlinked folders not entered
            for dirpath, dirnames, filenames, dir_fd in os.fwalk(".", dir_fd=top):
                dirnames.sort()
                rel_dir = "" if dirpath == "." else dirpath[2:]
                for name in filenames:
                    if TMP_MARK in name:
                        continue
                    key = f"{rel_dir}/{name}" if rel_dir else name
                    if not key.startswith(prefix):
                        continue
                    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                    if stat_mod.S_ISREG(st.st_mode):
                        found.append(
                            ObjectInfo(key=key, size=st.st_size, last_modified_ns=st.st_mtime_ns)
                        )
        finally:
            os.close(top)
        found.sort(key=lambda o: o.key)
        return iter(found)

    def listed(self, keys: Sequence[str]) -> dict[str, ObjectInfo] | None:
        """One ``scandir`` per folder instead of a stat and three xattr reads per key."""
        by_folder: dict[str, list[str]] = {}
        for key in keys:
            folder, _, name = key.rpartition("/")
            by_folder.setdefault(folder, []).append(name)
        found: dict[str, ObjectInfo] = {}
        for folder, names in by_folder.items():
            wanted = set(names)
            try:
                listing = self._beneath.listing(self._rel(folder) if folder else self._prefix)
            except (FileNotFoundError, NotADirectoryError):
                continue  # no folder: none of its keys exist
            except (OSError, DestinationError):
                return None  # let the caller head every key and report per key
            try:
                with os.scandir(listing) as it:
                    for entry in it:
                        if entry.name not in wanted or not entry.is_file(follow_symlinks=False):
                            continue
                        st = entry.stat(follow_symlinks=False)
                        key = f"{folder}/{entry.name}" if folder else entry.name
                        found[key] = ObjectInfo(
                            key=key,
                            size=st.st_size,
                            last_modified_ns=st.st_ctime_ns,
                            etag=_etag(st),
                        )
            except OSError:
                return None
            finally:
                os.close(listing)
        return found

    def delete(self, key: str) -> None:
        names = self._beneath.split(self._rel(key))
        try:
            folder = self._beneath.folder(names[:-1])
        except (FileNotFoundError, NotADirectoryError):
            return  # no folder: no object
        except OSError as exc:
            raise DestinationError(key, f"cannot open folder: {_why(exc)}") from None
        _silent_unlink(names[-1], folder)
        # Remove folders left empty, up to the base, like OSS where folders are only prefixes.
        base = len(self._beneath.split(self._prefix))
        for depth in range(len(names) - 1, base, -1):
            try:
                os.rmdir(names[depth - 1], dir_fd=self._beneath.folder(names[: depth - 1]))
            except OSError:
                break


_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_LIBC.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
_SYNC_FILE_RANGE_WRITE = 2


def _syncfs(path: str) -> None:
    """``syncfs(2)`` (not in the os module): one file system, not every disk like sync."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if _LIBC.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise DestinationError("", f"cannot flush the folder to disk: {os.strerror(err)}")
    finally:
        os.close(fd)


def _etag(st: os.stat_result) -> str:
    """What tells one stored file from any other put under the same name: a put makes a
    new inode, and a rewrite in place changes the mtime or size."""
    return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"


def _why(exc: OSError) -> str:
    if exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        return "a file or folder of the same name is in the way"
    if exc.errno == errno.ENAMETOOLONG:
        return "name too long for the local file system"
    return exc.strerror or str(exc)


def _create_temp(key: str, folder: int, name: str) -> tuple[str, int]:
    """A new hidden temporary file next to ``name``: (its name, its descriptor)."""
    for attempt in range(_TEMP_TRIES):
        tmp = f".{name[:180]}{TMP_MARK}{_TEMP_NAMES.next()}"
        try:
            return tmp, os.open(tmp, _CREATE_FLAGS, 0o644, dir_fd=folder)
        except FileExistsError:
            if attempt + 1 < _TEMP_TRIES:
                continue  # a leftover of the same name: take the next one
            raise DestinationError(key, "cannot create file: temporary names all taken") from None
        except OSError as exc:
            raise DestinationError(key, f"cannot create file: {_why(exc)}") from None
    raise AssertionError("unreachable")


def _write_file(fd: int, reader: ExactReader, piece: int) -> None:
    """Write what ``reader`` gives, as it gives it (read-only views without a copy), and
    have the kernel start writing each ``WRITEBACK_STEP`` to disk as soon as it is
    written: the flush that makes the file durable (the fsync, or the batch's syncfs)
    then finds little left to write, instead of the whole file."""
    written = started = 0
    while chunk := reader.read_buffer(piece):
        _write_all(fd, chunk)
        written += len(chunk)
        if written - started >= WRITEBACK_STEP:
            _start_writeback(fd, started, written - started)
            started = written


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """``sync_file_range(SYNC_FILE_RANGE_WRITE)`` (not in the os module): start writing
    the range to disk without waiting for it. Only a head start for the flush that
    follows, so a file system that cannot do it changes nothing."""
    _LIBC.sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def _set_metadata(fd: int, crc: int, mtime_ns: int | None, mode: int | None) -> None:
    value = f"{crc:x}:{'' if mtime_ns is None else f'{mtime_ns:x}'}:"
    value += "" if mode is None else f"{mode:x}"
    try:
        os.setxattr(fd, XATTR, value.encode())
    except OSError as exc:
        if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
            raise


def _get_metadata(fd: int) -> tuple[int | None, int | None, int | None]:
    """(CRC-64, source mtime, mode) as a put kept them; ``None`` for what is not kept."""
    try:
        crc, mtime, mode = os.getxattr(fd, XATTR).decode("ascii").split(":")
        return int(crc, 16), _hex_or_none(mtime), _hex_or_none(mode)
    except (OSError, ValueError, UnicodeDecodeError):
        pass
    # An object written by an earlier version: three attributes in decimal.
    return (
        _get_int_xattr(fd, XATTR_CRC),
        _get_int_xattr(fd, XATTR_MTIME),
        _get_int_xattr(fd, XATTR_MODE),
    )


def _hex_or_none(text: str) -> int | None:
    return int(text, 16) if text else None


def _get_int_xattr(fd: int, name: str) -> int | None:
    try:
        return int(os.getxattr(fd, name))
    except (OSError, ValueError):
        return None


def _crc_of_file(fd: int) -> int:
    crc = Crc64()
    offset = 0
    while chunk := os.pread(fd, 4 * 1024 * 1024, offset):
        crc.update(chunk)
        offset += len(chunk)
    return crc.value


def _silent_unlink(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass
