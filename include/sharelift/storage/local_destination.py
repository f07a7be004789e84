"""A local folder as a destination: NAS->NAS copies, tests, and a baseline for benchmarks.

Layout: the folder plays the bucket; a key ``a/b.txt`` is the file ``<path>/<prefix>a/b.txt``.
What OSS keeps as object metadata we keep in extended attributes (``user.sharelift.*``):
the CRC-64 of the bytes written and the source mtime/mode. The file's own mtime is also
set to the source mtime, so a file system without xattrs still supports the overwrite rule
(and the CRC is then computed on ``head``, which is slower but correct).

A put writes a hidden temporary file in the target folder, fsyncs it and renames it over
the key, so a crash never leaves a partial file under a real name.

Inside ``batch()`` (the engine's copy loop) the fsync per file is replaced by one
``syncfs`` per commit, which the engine calls before it records the batch's outcomes: an
fsync per small file cost more than everything else of the copy (the durable ``cp``
floor here is 2,700 files/s against 12,600 without it). The rename still makes each file
appear whole to a reader; after a power loss an unrecorded file may be short, and the next
run re-copies it because its size differs.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import secrets
import stat as stat_mod
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import BinaryIO

from sharelift.addresses import DestinationAddress
from sharelift.checksum import Crc64
from sharelift.errors import AddressError, DestinationError
from sharelift.storage.base import (
    Destination,
    ObjectInfo,
    ProgressCallback,
    PutResult,
    ReadStream,
    TransferConfig,
    check_relative_path,
)
from sharelift.storage.streaming import ExactReader

TMP_MARK = ".sharelift-tmp-"
XATTR_CRC = "user.sharelift.crc64"
XATTR_MTIME = "user.sharelift.mtime_ns"
XATTR_MODE = "user.sharelift.mode"


class LocalDestination(Destination):
    scheme = "file"

    def __init__(self, address: DestinationAddress, transfer: TransferConfig | None = None) -> None:
        self.address = address
        self.transfer = transfer or TransferConfig()
        self.root = os.path.normpath(address.path)
        self.base = os.path.join(self.root, address.prefix) if address.prefix else self.root
        self._batched = 0  # open ``batch()`` contexts: puts skip their own fsync
        self._batch_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalDestination({self.address.name!r}, {self.base!r})"

    def _path(self, key: str) -> str:
        rel = check_relative_path(key)
        if not rel or rel != key.strip("/") or key.endswith("/"):
            raise DestinationError(key, "invalid object name for a local folder")
        return os.path.join(self.base, rel)

    def display_url(self, key: str = "") -> str:
        return f"file://{self.base.rstrip('/')}/{key}"

    def check(self) -> None:
        if not os.path.isdir(self.root):
            raise AddressError(self.address.name, f"folder {self.root} does not exist")
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise AddressError(self.address.name, f"folder {self.root} is not writable")

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            st = os.stat(path, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat_mod.S_ISREG(st.st_mode):
            return None
        crc = _get_int_xattr(path, XATTR_CRC)
        mtime = _get_int_xattr(path, XATTR_MTIME)
        if crc is None or (mtime is not None and mtime != st.st_mtime_ns):
            # No CRC kept, or the file was written since our put (which set its mtime to the
            # source's): the kept CRC may describe other bytes, so read the file.
            crc = _crc_of_file(path)
        return ObjectInfo(
            key=key,
            size=st.st_size,
            crc64=crc,
            source_mtime_ns=mtime if mtime is not None else st.st_mtime_ns,
            mode=_get_int_xattr(path, XATTR_MODE),
            last_modified_ns=st.st_ctime_ns,
            etag=_etag(st),
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
        path = self._path(key)
        folder = os.path.dirname(path)
        tmp = os.path.join(
            folder, f".{os.path.basename(path)[:180]}{TMP_MARK}{secrets.token_hex(4)}"
        )
        reader = ExactReader(stream, size, key, progress=progress)
        fd = self._create(key, folder, tmp)
        try:
            with os.fdopen(fd, "wb", buffering=0) as f:
                while True:
                    chunk = reader.read(self.transfer.part_size)
                    if not chunk:
                        break
                    f.write(chunk)
                crc = reader.finish()
                if not self._batched:
                    os.fsync(f.fileno())
                if source_mtime_ns is not None:
                    os.utime(f.fileno(), ns=(source_mtime_ns, source_mtime_ns))
                st = os.fstat(f.fileno())
            _set_xattrs(tmp, crc, source_mtime_ns, mode)
            os.replace(tmp, path)
        except BaseException as exc:
            _silent_unlink(tmp)
            if isinstance(exc, OSError):
                raise DestinationError(key, f"cannot write file: {_why(exc)}") from None
            raise
        return PutResult(key=key, size=size, crc64=crc, etag=_etag(st))

    @staticmethod
    def _create(key: str, folder: str, tmp: str) -> int:
        """Open the temporary file, making its folder only when it is missing (a makedirs
        per file is a stat per path component)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            return os.open(tmp, flags, 0o644)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise DestinationError(key, f"cannot create file: {_why(exc)}") from None
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise DestinationError(key, f"cannot create folder: {_why(exc)}") from None
        try:
            return os.open(tmp, flags, 0o644)
        except OSError as exc:
            raise DestinationError(key, f"cannot create file: {_why(exc)}") from None

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
        return open(self._path(key), "rb")  # type: ignore[return-value]  # noqa: SIM115 - caller closes

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        found: list[ObjectInfo] = []
        if not os.path.isdir(self.base):
            return iter(())
        for dirpath, dirnames, filenames in os.walk(self.base):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, self.base)
            rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
            for name in filenames:
                if TMP_MARK in name:
                    continue
                key = f"{rel_dir}/{name}" if rel_dir else name
                if not key.startswith(prefix):
                    continue
                st = os.stat(os.path.join(dirpath, name), follow_symlinks=False)
                if stat_mod.S_ISREG(st.st_mode):
                    found.append(
                        ObjectInfo(key=key, size=st.st_size, last_modified_ns=st.st_mtime_ns)
                    )
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
                with os.scandir(self._path(folder) if folder else self.base) as it:
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
            except (FileNotFoundError, NotADirectoryError):
                continue  # no folder: none of its keys exist
            except (OSError, DestinationError):
                return None  # let the caller head every key and report per key
        return found

    def delete(self, key: str) -> None:
        path = self._path(key)
        _silent_unlink(path)
        # Remove folders left empty, up to the base, like OSS where folders are only prefixes.
        folder = os.path.dirname(path)
        while folder.startswith(self.base) and folder != self.base:
            try:
                os.rmdir(folder)
            except OSError:
                break
            folder = os.path.dirname(folder)


_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


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


def _set_xattrs(path: str, crc: int, mtime_ns: int | None, mode: int | None) -> None:
    try:
        os.setxattr(path, XATTR_CRC, str(crc).encode())
        if mtime_ns is not None:
            os.setxattr(path, XATTR_MTIME, str(mtime_ns).encode())
        if mode is not None:
            os.setxattr(path, XATTR_MODE, str(mode).encode())
    except OSError as exc:
        if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
            raise


def _get_int_xattr(path: str, name: str) -> int | None:
    try:
        return int(os.getxattr(path, name, follow_symlinks=False))
    except (OSError, ValueError):
        return None


def _crc_of_file(path: str) -> int:
    crc = Crc64()
    with open(path, "rb") as f:
        while chunk := f.read(4 * 1024 * 1024):
            crc.update(chunk)
    return crc.value


def _silent_unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
