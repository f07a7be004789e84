"""An NFS export as a source, through libnfs (a userspace NFS client: no mount, no root).

Threads and processes: the libnfs Python binding (SWIG over the synchronous libnfs API)
never releases the GIL, so every call that waits on the server (mount, open, stat,
read, close, the READDIRPLUS RPCs of ``nfs_opendir``) goes through ``ctypes`` on the
same libnfs instead: a ctypes call releases the GIL for its length, so other threads
run while one waits. The binding is still used to make the context and parse the
options URL. One libnfs context is one TCP connection and is not thread-safe: one
context per thread, never shared; the copy engine gives each copying thread its own
``clone()``, and ``walk`` lists the next folders on helper threads with their own
contexts (``_Prefetcher``). The Python work per entry and per file still holds the GIL,
so the engine keeps parallelising subtasks across processes (``features.gil_bound``);
each process builds its own ``NfsSource`` from the ``SourceAddress``. An ``NfsSource``
pickles as its address (the connection is made again, lazily, on first use in the other
process), and a source inherited through ``fork`` notices the new pid and reconnects
instead of sharing the parent's socket. Open streams are not inherited: open files in
the process that reads.

Releasing the GIL while waiting is what lets the listing helpers of a walk and the copy
threads with their clones overlap their round trips; what it gained is in
``bench/results/findings.md``.

How it talks to the server:

* The export is mounted with ``nfs_mount(host, export)`` after a URL that carries only
  options (``nfs://host/?nfsport=N&mountport=M&version=3&...``): libnfs 4.0 does not
  percent-decode URLs, so an export path with '?', '#', '%' or spaces is passed as is.
  ``dircache=0`` switches off libnfs's client-side directory cache (it is revalidated by
  the directory's mtime only, so a file that grew kept its old size in the next listing).
  ``autoreconnect=3`` replaces the default of reconnecting forever (a dead server would
  hang the walk); it still rides over a server closing an idle connection.
* ``walk`` lists each folder with ``nfs_opendir``/``nfs_readdir``: on NFSv3 that is
  READDIRPLUS, which returns mode, size and mtime (ns) with every name, so there is no
  stat per entry. (``NFS.listdir()`` returns names only and never closes the handle.)
  After its first few folders, the walk has ``PREFETCH_THREADS`` helpers list the
  folders it will enter next, so several listings are in flight while it yields; it
  still yields the same entries in the same order, and a helper's failure surfaces only
  when the walk reaches that folder (see ``_Prefetcher`` for the bounds).
* ``open`` uses ``O_NOFOLLOW`` (libnfs returns ELOOP for a symlink) and then checks with
  ``fstat`` that it got a regular file (libnfs happily "opens" folders and fifos).
* ``open_entry`` (the copy's open) on NFSv3 goes below the file API (``nfs3_rpc``): one
  LOOKUP of the name in its folder's handle, which the source and its clones keep (a
  folder is itself one LOOKUP in its parent's), then the READs, several in flight for a
  big file. The LOOKUP reply's type refuses a symlink, folder or fifo, and its
  attributes (with the change time) are the fingerprint before the read; a one-READ
  file's reply carries the fingerprint after it, so a small file costs two round trips
  where ``nfs_open``/``nfs_read``/GETATTR took six or more.
* A lost connection (server restarted, socket reset, RPC timed out) is transient: opens and
  stats are tried again under ``storage.retrying``'s policy, each try after the first on a
  new context (mounted again); a read that fails half-way fails the file as transient, and
  the copy reads it again. Before a failed read is reported, libnfs itself reconnects up to
  ``RECONNECTS`` times.
* Every RPC has a timeout (``RPC_TIMEOUT_MS``, ``nfs_set_timeout``, which the binding
  does not wrap). Without it a server that stops answering (but keeps the connection)
  blocks the caller for ever.

The ctypes side: the functions are bound from the very libnfs the binding is linked to
(found in /proc/self/maps), with ``struct nfs_stat_64`` and ``struct nfsdirent`` declared
as in libnfs 4.0's nfsc/libnfs.h; the context pointer is ``int()`` of the SWIG object.
Calls that never wait (``nfs_readdir``, ``nfs_closedir``, ``nfs_get_error``) keep the
GIL (``PyDLL``): releasing and re-taking it would cost more than the call. Names are
read as raw bytes and decoded with 'surrogateescape' (a name that is not valid UTF-8 is
reported, not listed further or opened); paths with a lone surrogate or a NUL are
refused before any call (through the binding they crashed the interpreter).

Entries a listing cannot describe: a folder that may be read but not searched (mode
0644) lists its names over NFSv3, but READDIRPLUS carries no attributes for them (no
type, size or mtime). One LOOKUP of such a name tells why; when the server refuses it,
the folder is yielded as an error ("cannot enter folder") and each name in it as an error
entry naming the folder, never as a special file. (NFSv4 refuses the whole listing.)

Times: NFSv3 carries seconds as an unsigned 32-bit number (1970-2106). A file modified
before 1970 reaches the client wrapped into 2038-2106 (ganesha sends the low 32 bits),
which no client can tell from a real date in that range: the mtime is reported as the
server sent it. NFSv4 carries signed 64-bit seconds, and those times come out right
(``nfs_version: 4``); ``nfs_stat_64`` holds them as uint64, read back as signed. Functions
return ``-errno`` and leave a message in ``nfs_get_error``. Handles are raw C pointers
(using one after ``nfs_close``/``nfs_destroy_context`` is a use-after-free), so every
handle here is closed exactly once and streams refuse to read after their source closed
or in another process.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import ctypes
import errno
import os
import queue
import re
import socket
import stat as stat_mod
import struct
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import sharelift.storage.nfs3_rpc as nfs3_rpc
import sharelift.storage.retrying as retrying
from sharelift.addresses import SourceAddress
from sharelift.errors import (
    AddressError,
    ConfigError,
    FileError,
    NotAFile,
    SourceFileChanged,
    SourceFileNotFound,
    SourceFilePermissionDenied,
    UnsupportedLibraryError,
)
from sharelift.storage.base import (
    Entry,
    EntryKind,
    Fingerprint,
    ReadStream,
    Source,
    SourceFeatures,
    check_relative_path,
)

T = TypeVar("T")

# The server's READ maximum on the test bed: larger reads fall out of the CPU caches,
# smaller ones pay the per-call overhead (bench/results/findings.md).
READ_CHUNK = 1024 * 1024
CONNECT_TIMEOUT = 5.0
RECONNECTS = 3
# An RPC (a LOOKUP, one READ, one READDIRPLUS page...) unanswered for this long fails with
# "Command timed out" instead of blocking for ever (libnfs times each request PDU).
RPC_TIMEOUT_MS = 120_000
PORTMAPPER_PORT = 111
NFS_DEFAULT_PORT = 2049

# NF3 file types (nfsdirent.type) for servers that leave the type bits out of ``mode``.
_NF3_TYPE_BITS = {
    1: stat_mod.S_IFREG,
    2: stat_mod.S_IFDIR,
    3: stat_mod.S_IFBLK,
    4: stat_mod.S_IFCHR,
    5: stat_mod.S_IFLNK,
    6: stat_mod.S_IFSOCK,
    7: stat_mod.S_IFIFO,
}

# Listing ahead of the walk (see ``_Prefetcher``): helper threads, each with its own
# context; folders submitted and not yet taken; finished listings' entries held before
# no more are submitted; folders the walk lists alone before it starts the helpers.
PREFETCH_THREADS = 3
PREFETCH_FOLDERS = 32
PREFETCH_ENTRIES = 100_000
PREFETCH_AFTER = 8

# Copy reads (``open_entry``, NFSv3): READs of a big file in flight at once, and folder
# handles kept for the LOOKUPs of the files in them (a subtask's files come folder by
# folder).
READS_IN_FLIGHT = 4
BUFFERED_READ = 256 * 1024  # READs this big land in buffers the stream keeps
FOLDER_HANDLES = 64

_Item = tuple[str, int, int, int]  # name, mode, size, mtime_ns: one entry of a listing
_Positions = tuple[list[int], list[str]]  # where a listing's sub-folders are: index, name
_Frame = list[Any]  # [prefix, items, index of the next item, _Positions | None]


def _libnfs() -> Any:
    try:
        import libnfs
    except ImportError as exc:  # pragma: no cover - depends on the machine
        if "libnfs.so" in str(exc):  # the binding is there, the C library it links to is not
            raise ImportError(
                f"the libnfs C library is missing ({exc}): install the Debian package "
                "libnfs13 (scripts/install.sh)"
            ) from exc
        raise ImportError(
            "the libnfs Python binding is missing: install the Debian package libnfs-dev "
            "and `pip install libnfs` (scripts/install.sh does both)"
        ) from exc
    return libnfs


class _NfsStat64(ctypes.Structure):
    """``struct nfs_stat_64`` of libnfs 4.0 (nfsc/libnfs.h): seventeen uint64_t."""

    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "nfs_dev",
            "nfs_ino",
            "nfs_mode",
            "nfs_nlink",
            "nfs_uid",
            "nfs_gid",
            "nfs_rdev",
            "nfs_size",
            "nfs_blksize",
            "nfs_blocks",
            "nfs_atime",
            "nfs_mtime",
            "nfs_ctime",
            "nfs_atime_nsec",
            "nfs_mtime_nsec",
            "nfs_ctime_nsec",
            "nfs_used",
        )
    ]


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _NfsDirent(ctypes.Structure):
    """``struct nfsdirent`` of libnfs 4.0 (nfsc/libnfs.h); ``name`` reads as ``bytes``."""

    _fields_ = [
        ("next", ctypes.c_void_p),
        ("name", ctypes.c_char_p),
        ("inode", ctypes.c_uint64),
        ("type", ctypes.c_uint32),
        ("mode", ctypes.c_uint32),
        ("size", ctypes.c_uint64),
        ("atime", _Timeval),
        ("mtime", _Timeval),
        ("ctime", _Timeval),
        ("uid", ctypes.c_uint32),
        ("gid", ctypes.c_uint32),
        ("nlink", ctypes.c_uint32),
        ("dev", ctypes.c_uint64),
        ("rdev", ctypes.c_uint64),
        ("blksize", ctypes.c_uint64),
        ("blocks", ctypes.c_uint64),
        ("used", ctypes.c_uint64),
        ("atime_nsec", ctypes.c_uint32),
        ("mtime_nsec", ctypes.c_uint32),
        ("ctime_nsec", ctypes.c_uint32),
    ]


class _CLib:
    """The libnfs C functions this module calls, bound with ctypes.

    ``CDLL`` functions release the GIL for the length of the call: every call that waits
    on the server goes through them. ``PyDLL`` functions keep it: they only touch memory
    (a released and re-taken GIL would cost more than the call, and a thread coming back
    for it may wait up to ``sys.getswitchinterval()`` behind a busy one).
    """

    def __init__(self, path: str) -> None:
        c = ctypes
        vp = c.c_void_p
        blocking = c.CDLL(path)
        quick = c.PyDLL(path)

        def bind(lib: Any, name: str, restype: Any, *argtypes: Any) -> Any:
            fn = getattr(lib, name)
            fn.restype = restype
            fn.argtypes = list(argtypes)
            return fn

        self.nfs_mount = bind(blocking, "nfs_mount", c.c_int, vp, c.c_char_p, c.c_char_p)
        self.nfs_open = bind(blocking, "nfs_open", c.c_int, vp, c.c_char_p, c.c_int, c.POINTER(vp))
        self.nfs_fstat64 = bind(blocking, "nfs_fstat64", c.c_int, vp, vp, c.POINTER(_NfsStat64))
        self.nfs_lstat64 = bind(
            blocking, "nfs_lstat64", c.c_int, vp, c.c_char_p, c.POINTER(_NfsStat64)
        )
        self.nfs_read = bind(blocking, "nfs_read", c.c_int, vp, vp, c.c_uint64, vp)
        # Not waiting on the server for a file opened read-only on NFSv3, but NFSv4 sends
        # a CLOSE.
        self.nfs_close = bind(blocking, "nfs_close", c.c_int, vp, vp)
        self.nfs_opendir = bind(blocking, "nfs_opendir", c.c_int, vp, c.c_char_p, c.POINTER(vp))
        # "never blocks" (libnfs.h): the listing is in memory after nfs_opendir.
        self.nfs_readdir = bind(quick, "nfs_readdir", vp, vp, vp)
        self.nfs_closedir = bind(quick, "nfs_closedir", None, vp, vp)
        self.nfs_get_error = bind(quick, "nfs_get_error", c.c_char_p, vp)
        self.nfs_set_timeout = bind(quick, "nfs_set_timeout", None, vp, c.c_int)
        self.rpc = nfs3_rpc.RpcLib(path)

    def error(self, ctx: int) -> str:
        """``nfs_get_error``: the message of the context's last failure ('' if none)."""
        raw = self.nfs_get_error(ctx)
        return raw.decode("utf-8", "surrogateescape") if raw else ""


_c_libnfs: Any = None  # _CLib once found, False if it cannot be
_c_libnfs_lock = threading.Lock()

# The shared library whose nfsc/libnfs.h the declarations above are copied from (libnfs
# 4.0, soname major 13). Another major version may move struct fields or reorder a
# function's arguments (6.0 swapped nfs_read's count and buffer): the calls would then
# read garbage instead of failing, so any other is refused before the first call.
LIBNFS_ABI = "libnfs.so.13"
LIBNFS_REMEDY = (
    "install libnfs 4.0 (Debian 12: libnfs13 and libnfs-dev, then reinstall the libnfs "
    "Python package), or update the ctypes declarations in sharelift.storage.nfs_source "
    "to the new nfsc/libnfs.h"
)


def libnfs_abi(path: str) -> str | None:
    """The soname (``libnfs.so.N``) of a libnfs shared library file, from its name; None
    for a file that is not one (libnfs linked statically into the binding)."""
    match = re.search(r"libnfs\.so\.\d+", os.path.basename(path))
    return match.group(0) if match else None


def check_libnfs_abi(path: str) -> None:
    """Raise ``UnsupportedLibraryError`` unless ``path`` is the libnfs ABI declared here."""
    found = libnfs_abi(path)
    if found is not None and found != LIBNFS_ABI:
        raise UnsupportedLibraryError(
            "libnfs",
            f"libnfs 4.0 ({LIBNFS_ABI})",
            f"{found} ({path})",
            LIBNFS_REMEDY,
        )


def _clib() -> _CLib | None:
    """The libnfs the binding is linked to, through ctypes (None if it cannot be found).

    It must be the very library the SWIG binding uses (contexts are shared between the
    two): it is found in /proc/self/maps, or is the binding's own extension module when
    that has libnfs linked in statically. Raises ``UnsupportedLibraryError`` for a libnfs
    of another ABI (checked on the first connection).
    """
    global _c_libnfs
    if _c_libnfs is not None:
        return _c_libnfs or None
    with _c_libnfs_lock:  # copy threads make their first clones at the same moment
        if _c_libnfs is not None:
            return _c_libnfs or None
        nfs = _libnfs()
        candidates = []
        try:
            with open("/proc/self/maps") as maps:
                for line in maps:
                    if "/libnfs.so" in line:
                        candidates.append(line.split(None, 5)[-1].strip())
                        break
        except OSError:
            pass
        extension = getattr(getattr(nfs.libnfs, "_libnfs", None), "__file__", None)
        if extension:
            candidates.append(extension)
        found: Any = False
        for path in candidates:
            check_libnfs_abi(path)
            try:
                found = _CLib(path)
                break
            except (OSError, AttributeError):
                continue
        _c_libnfs = found
    return _c_libnfs or None


def _valid_name(name: str) -> bool:
    """False for names the binding cannot pass back to libnfs (lone surrogates, NUL)."""
    if "\x00" in name:
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _strerror(rc: int) -> str:
    try:
        return os.strerror(-rc)
    except (ValueError, OverflowError):
        return f"error {rc}"


class _NfsCallError(Exception):
    """A libnfs call failed: ``rc`` is ``-errno``, ``message`` libnfs's own text."""

    def __init__(self, rc: int, message: str) -> None:
        self.rc = rc
        self.message = message or _strerror(rc)
        super().__init__(self.message)

    @property
    def errno(self) -> int:
        return -self.rc

    def is_not_found(self) -> bool:
        return self.errno in (errno.ENOENT, errno.ENOTDIR, errno.ESTALE) or "NOENT" in self.message

    def is_permission(self) -> bool:
        return self.errno in (errno.EACCES, errno.EPERM) or "ERR_ACCES" in self.message

    def is_connection(self) -> bool:
        """The server is gone or does not answer (not a problem of one file)."""
        if self.errno in _CONNECTION_ERRNOS:
            return True
        return self.errno in (errno.EIO, errno.EFAULT, errno.EINTR, errno.ETIMEDOUT) and any(
            word in self.message.lower()
            for word in ("service", "rpc", "connect", "timed out", "socket", "reset")
        )


_CONNECTION_ERRNOS = frozenset(
    {errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.ENOTCONN, errno.EPIPE}
)


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, _NfsCallError) and exc.is_connection()


class NfsSource(Source):
    """Reads an NFS export (v3 by default) with libnfs. See the module docstring."""

    scheme = "nfs"
    features = SourceFeatures(gil_bound=True, reports_symlinks=True, read_chunk_size=READ_CHUNK)

    def __init__(self, address: SourceAddress) -> None:
        if address.protocol != "nfs":
            raise ConfigError(
                "protocol", f"NfsSource needs an nfs address (got {address.protocol!r})"
            )
        self.address = address
        self.export = "/" + address.share.strip("/") if address.share.strip("/") else "/"
        self.root_rel = check_relative_path(address.path)
        # Every path given to libnfs is absolute from the export root.
        self._root_abs = "/" + self.root_rel if self.root_rel else "/"
        self._nfs: Any = None
        self._ctx: Any = None
        self._ctx_p = 0  # the context as a C pointer, for the ctypes calls
        self._pid = 0
        self._streams: weakref.WeakSet[_NfsReadStream | _Nfs3Stream] = weakref.WeakSet()
        self._walks: weakref.WeakSet[_Prefetcher] = weakref.WeakSet()
        self._last_mount_error = _NfsCallError(-errno.ENOTCONN, "not mounted")
        self._rpc: nfs3_rpc.Rpc | None = None  # the RPC layer of ``_ctx`` (``_rpc_ctx``)
        self._rpc_ctx = 0
        self._folders = _FolderHandles()  # shared with clones: handles are the server's

    # -- pickling and fork: the address is the whole state ------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {"address": self.address}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["address"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"NfsSource({self.address.name!r}, {self.display_url()!r})"

    def clone(self) -> NfsSource:
        twin = NfsSource(self.address)
        twin._folders = self._folders
        return twin

    # -- connection ----------------------------------------------------------------------

    def _options_url(self) -> str:
        a = self.address
        host = a.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        args = [f"version={a.nfs_version}", "dircache=0", f"autoreconnect={RECONNECTS}"]
        if a.port:
            args.append(f"nfsport={a.port}")
        if a.mount_port and a.nfs_version == 3:
            args.append(f"mountport={a.mount_port}")
        if a.nfs_uid is not None:
            args.append(f"uid={a.nfs_uid}")
        if a.nfs_gid is not None:
            args.append(f"gid={a.nfs_gid}")
        return f"nfs://{host}/?{'&'.join(args)}"

    def _mount(self) -> tuple[Any, Any]:
        """A new mounted context, or ``_NfsCallError`` saying why not."""
        nfs = _libnfs()
        lib = _clib()
        if lib is None:
            raise _NfsCallError(
                -errno.ENOSYS, "libnfs's C library cannot be found in this process (ctypes)"
            )
        ctx = nfs.nfs_init_context()
        if ctx is None:
            raise _NfsCallError(-errno.ENOMEM, "libnfs could not create a context")
        try:
            url = nfs.nfs_parse_url_incomplete(ctx, self._options_url())
            if url is None:
                raise _NfsCallError(-errno.EINVAL, nfs.nfs_get_error(ctx) or "bad NFS options")
            try:
                server = url.server
            finally:
                nfs.nfs_destroy_url(url)
            if not _valid_name(self.export):
                raise _NfsCallError(-errno.EINVAL, "the export path is not valid UTF-8")
            ctx_p = int(ctx)
            lib.nfs_set_timeout(ctx_p, RPC_TIMEOUT_MS)
            # Through ctypes: the mount's RPCs do not hold the GIL (helpers of a walk mount
            # while the walk goes on).
            rc = lib.nfs_mount(ctx_p, server.encode(), self.export.encode())
            if rc != 0:
                raise _NfsCallError(rc, lib.error(ctx_p) or _strerror(rc))
        except BaseException:
            nfs.nfs_destroy_context(ctx)
            raise
        return nfs, ctx

    def _context(self) -> tuple[Any, Any]:
        """The mounted libnfs context of this process (made on first use)."""
        if self._ctx is not None and self._pid == os.getpid():
            return self._nfs, self._ctx
        if self._ctx is not None:
            # Inherited through fork: the socket is the parent's. Abandon it (destroying
            # it here would free memory the parent's copy does not share, but could also
            # send on the parent's connection); connect again.
            self._ctx = None
            self._streams = weakref.WeakSet()
            self._walks = weakref.WeakSet()
            self._rpc = None
            self._folders = _FolderHandles()
        try:
            self._nfs, self._ctx = self._mount()
        except _NfsCallError as exc:
            self._last_mount_error = exc
            raise AddressError(self.address.name, self._mount_failure(exc)) from None
        self._ctx_p = int(self._ctx)
        self._pid = os.getpid()
        return self._nfs, self._ctx

    def _c(self) -> tuple[_CLib, int]:
        """The ctypes functions and this process's context pointer (connecting if needed)."""
        self._context()
        return _c_libnfs, self._ctx_p

    def _c_or_call_error(self) -> tuple[_CLib, int]:
        """``_c``, but a failed mount raises the ``_NfsCallError`` (for ``_retried``)."""
        if self._ctx is None or self._pid != os.getpid():
            try:
                self._context()
            except AddressError:
                raise self._last_mount_error from None
        return _c_libnfs, self._ctx_p

    def _drop_context(self) -> None:
        """Forget a context whose connection is dead: the next call mounts again. Streams
        on it end (their handles die with it); walks keep their own helpers."""
        for stream in list(self._streams):
            stream.close()
        self._folders.clear()
        self._rpc = None
        ctx, self._ctx = self._ctx, None
        self._ctx_p = 0
        if ctx is not None and self._pid == os.getpid():
            with contextlib.suppress(Exception):
                self._nfs.nfs_destroy_context(ctx)

    def _retried(self, what: str, fn: Callable[[], T]) -> T:
        """``fn`` (libnfs calls raising ``_NfsCallError``) under the retry policy, on a new
        connection for each try after a connection failure."""
        return retrying.call(fn, transient=_transient, recover=self._drop_context, what=what)

    def close(self) -> None:
        for walk in list(self._walks):
            walk.close()
        for stream in list(self._streams):
            stream.close()
        self._folders = _FolderHandles()  # the clones keep theirs
        self._rpc = None
        ctx, self._ctx = self._ctx, None
        self._ctx_p = 0
        if ctx is not None and self._pid == os.getpid():
            self._nfs.nfs_destroy_context(ctx)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: nothing useful to do
            pass

    # -- paths ---------------------------------------------------------------------------

    def _abs(self, rel: str) -> str:
        """The libnfs path (absolute from the export root) of a path relative to the source."""
        if not rel:
            return self._root_abs
        return f"{self._root_abs.rstrip('/')}/{rel}"

    def display_url(self, path: str = "") -> str:
        base = self.address.display_url()
        rel = check_relative_path(path) if path else ""
        return f"{base}/{rel}" if rel else base

    # -- check ---------------------------------------------------------------------------

    def check(self) -> None:
        """Raise ``AddressError`` naming the cause: unreachable, refused, missing export or
        sub-folder, or no permission to list it."""
        self._probe_ports()
        lib, ctx = self._c()
        where = self._describe_root()
        st = _NfsStat64()
        rc = lib.nfs_lstat64(ctx, self._root_abs.encode(), ctypes.byref(st))
        if rc != 0:
            err = _NfsCallError(rc, lib.error(ctx))
            if err.is_not_found():
                raise AddressError(self.address.name, f"{where} does not exist")
            if err.is_permission():
                raise AddressError(self.address.name, f"permission denied opening {where}")
            raise AddressError(self.address.name, f"cannot open {where}: {err.message}")
        mode = st.nfs_mode
        if stat_mod.S_ISLNK(mode):
            raise AddressError(self.address.name, f"{where} is a symlink, not a folder")
        if not stat_mod.S_ISDIR(mode):
            raise AddressError(self.address.name, f"{where} is not a folder")
        try:
            self._list_dir(self._root_abs)
        except _NfsCallError as err:
            if err.is_permission():
                raise AddressError(
                    self.address.name, f"permission denied listing {where}"
                ) from None
            raise AddressError(self.address.name, f"cannot list {where}: {err.message}") from None

    def _describe_root(self) -> str:
        if self.root_rel:
            return f"sub-folder {self.root_rel!r} of export {self.export} on {self.address.host}"
        return f"export {self.export} on {self.address.host}"

    def _service_ports(self) -> list[tuple[str, int]]:
        a = self.address
        nfs_port = a.port or (NFS_DEFAULT_PORT if a.nfs_version == 4 else None)
        ports: list[tuple[str, int]] = []
        ports.append(("NFS", nfs_port) if nfs_port else ("portmapper", PORTMAPPER_PORT))
        if a.nfs_version == 3:
            if a.mount_port:
                ports.append(("MOUNT", a.mount_port))
            elif a.port:
                ports.append(("portmapper", PORTMAPPER_PORT))
        return ports

    def _probe_ports(self) -> None:
        """Plain TCP connects first: they tell 'refused' from 'unreachable' from 'no such
        host', which libnfs reports alike ("nfs_service failed")."""
        host = self.address.host.strip("[]")
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise AddressError(
                self.address.name, f"cannot resolve host name {host!r}: {exc.strerror}"
            ) from None
        family, _, _, _, sockaddr = infos[0]
        for service, port in self._service_ports():
            target = (sockaddr[0], port, *sockaddr[2:])
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.settimeout(CONNECT_TIMEOUT)
                try:
                    s.connect(target)
                except ConnectionRefusedError:
                    hint = (
                        "no portmapper there: give the NFS and MOUNT ports, or check the server"
                        if service == "portmapper"
                        else "no NFS server listening there (wrong port, or the server is down)"
                    )
                    raise AddressError(
                        self.address.name,
                        f"connection refused by {host} port {port} ({service}): {hint}",
                    ) from None
                except TimeoutError:
                    raise AddressError(
                        self.address.name,
                        f"host {host} unreachable: no answer on port {port} ({service}) within "
                        f"{CONNECT_TIMEOUT:g} s (down, wrong address, or a firewall)",
                    ) from None
                except OSError as exc:
                    raise AddressError(
                        self.address.name,
                        f"host {host} unreachable on port {port} ({service}): {exc.strerror or exc}",
                    ) from None

    def _mount_failure(self, exc: _NfsCallError) -> str:
        """Say why the mount failed, as specifically as the server lets us."""
        a = self.address
        msg = exc.message
        if "resolv" in msg or "Invalid address" in msg:
            return f"cannot resolve host name {a.host!r}"
        if exc.is_connection() or "nfs_service failed" in msg:
            return (
                f"cannot connect to the NFS server {a.host} "
                f"(port {a.port or 'from the portmapper'}): {msg}"
            )
        if exc.is_not_found() or exc.is_permission():
            exports = None
            if a.nfs_version == 3:
                exports = _list_exports(a.host.strip("[]"), a.mount_port)
            if exports is not None and self.export not in exports:
                shown = ", ".join(sorted(exports)) or "none"
                return (
                    f"export {self.export} does not exist on {a.host} (the server exports: {shown})"
                )
            if exc.is_not_found():
                return f"export {self.export} does not exist on {a.host}"
            if exports is not None:
                return f"permission denied: {a.host} refuses to let this client mount {self.export}"
            return (
                f"the server refused to mount {self.export} (no such export, or this client "
                f"is not allowed): {msg}"
            )
        return f"cannot mount {self.export} from {a.host}: {msg}"

    # -- listing -------------------------------------------------------------------------

    def _list_dir(self, abs_path: str) -> list[_Item]:
        """(name, mode, size, mtime_ns) of every entry of one folder, sorted by name.

        Names that are not valid UTF-8 come back decoded with 'surrogateescape'.
        """
        lib, ctx = self._c()
        handle = ctypes.c_void_p()
        rc = lib.nfs_opendir(ctx, abs_path.encode(), ctypes.byref(handle))  # all the RPCs
        if rc != 0:
            raise _NfsCallError(rc, lib.error(ctx))
        d = handle.value
        out = []
        untyped = False  # an entry came without attributes (see _fill_attributes)
        dirent = _NfsDirent.from_address
        readdir = lib.nfs_readdir
        try:
            while de := readdir(ctx, d):
                e = dirent(de)
                raw = e.name or b""
                if raw == b"." or raw == b"..":
                    continue
                mode = e.mode
                if not stat_mod.S_IFMT(mode):
                    mode |= _NF3_TYPE_BITS.get(e.type, 0)
                    untyped = untyped or not stat_mod.S_IFMT(mode)
                out.append(
                    (
                        raw.decode("utf-8", "surrogateescape"),
                        mode,
                        e.size,
                        e.mtime.tv_sec * 1_000_000_000 + e.mtime_nsec,
                    )
                )
        finally:
            lib.nfs_closedir(ctx, d)
        out.sort(key=lambda item: item[0])
        if untyped:
            out = self._fill_attributes(abs_path, out)
        return out

    def _fill_attributes(self, abs_path: str, items: list[_Item]) -> list[_Item]:
        """Entries READDIRPLUS gave without attributes: a folder that may be read but not
        searched (mode 0644) lists its names, and the server cannot LOOKUP them. One
        LOOKUP tells: when it is refused, every such entry is unreachable (its mode is
        ``-errno``, see ``_unreachable``); otherwise each is looked up on its own."""
        lib, ctx = self._c()
        base = abs_path.rstrip("/")
        out: list[_Item] = []
        refused = 0
        for item in items:
            name, mode = item[0], item[1]
            if stat_mod.S_IFMT(mode) or mode < 0:
                out.append(item)
                continue
            if refused or not _valid_name(name):
                out.append((name, refused or -errno.EACCES, 0, 0))
                continue
            st = _NfsStat64()
            rc = lib.nfs_lstat64(ctx, f"{base}/{name}".encode(), ctypes.byref(st))
            if rc != 0:
                err = _NfsCallError(rc, lib.error(ctx))
                if err.is_connection():
                    raise err
                if err.is_not_found():
                    continue  # removed since the listing: it is simply not there
                if err.is_permission():
                    refused = -errno.EACCES
                out.append((name, -err.errno if err.errno > 0 else -errno.EIO, 0, 0))
                continue
            entry = _entry_from_stat(name, st)
            out.append((name, int(st.nfs_mode), entry.size, entry.mtime_ns))
        return out

    def walk(self, top: str = "") -> Iterator[Entry]:
        top_rel = check_relative_path(top)
        try:
            items = self._list_dir(self._abs(top_rel))
        except _NfsCallError as err:
            if err.is_connection():
                raise self._lost(top_rel, err) from None
            if not top_rel:
                raise AddressError(
                    self.address.name, f"cannot list {self._describe_root()}: {err.message}"
                ) from None
            yield Entry(top_rel, EntryKind.DIR, error=_listing_error(err))
            return
        prefix = f"{top_rel}/" if top_rel else ""
        # One frame per open folder: [prefix, items, index of the next item, where its
        # sub-folders are (made by the prefetcher when it looks ahead)].
        stack: list[_Frame] = [[prefix, items, 0, None]]
        ahead = _Prefetcher(self, stack)
        try:
            while stack:
                frame = stack[-1]
                prefix, items, i = frame[0], frame[1], frame[2]
                n = len(items)
                while i < n:
                    name, mode, size, mtime_ns = items[i]
                    i += 1
                    rel = prefix + name
                    if mode < 0:
                        yield _unreachable(rel, prefix, mode)
                        continue
                    kind = EntryKind.of_mode(mode)
                    perm = stat_mod.S_IMODE(mode)
                    if not _valid_name(name):
                        yield Entry(
                            rel,
                            kind,
                            size=size if kind is EntryKind.FILE else 0,
                            mtime_ns=mtime_ns,
                            mode=perm,
                            error="name is not valid UTF-8; it cannot be read through libnfs "
                            "(and OSS keys must be UTF-8)",
                        )
                        continue
                    if kind is not EntryKind.DIR:
                        yield Entry(
                            rel,
                            kind,
                            size=size if kind is EntryKind.FILE else 0,
                            mtime_ns=mtime_ns,
                            mode=perm,
                        )
                        continue
                    frame[2] = i
                    try:
                        children, positions = ahead.take(rel, self._abs(rel))
                    except _NfsCallError as err:
                        if err.is_connection():
                            raise self._lost(rel, err) from None
                        if err.errno == errno.ENOENT:
                            continue  # removed between the two listings: it is simply not there
                        yield Entry(
                            rel,
                            EntryKind.DIR,
                            mtime_ns=mtime_ns,
                            mode=perm,
                            error=_listing_error(err),
                        )
                        continue
                    shut = _shut_folder(children)
                    yield Entry(rel, EntryKind.DIR, mtime_ns=mtime_ns, mode=perm, error=shut)
                    stack.append([rel + "/", children, 0, positions])
                    ahead.top_up()
                    break
                else:
                    stack.pop()
        finally:
            ahead.close()

    def _lost(self, rel: str, err: _NfsCallError) -> AddressError:
        """A dead connection ends the walk: every later folder would fail the same way."""
        return AddressError(
            self.address.name,
            f"lost the connection to the NFS server {self.address.host} while listing "
            f"{rel or 'the top folder'!r}: {err.message}",
        )

    # -- stat and open -------------------------------------------------------------------

    def _checked_rel(self, path: str) -> str:
        rel = check_relative_path(path)
        if not _valid_name(rel):
            raise FileError(path, "name is not valid UTF-8; it cannot be read through libnfs")
        return rel

    def stat(self, path: str) -> Entry:
        rel = self._checked_rel(path)

        def lstat() -> _NfsStat64:
            lib, ctx = self._c_or_call_error()
            st = _NfsStat64()
            rc = lib.nfs_lstat64(ctx, self._abs(rel).encode(), ctypes.byref(st))
            if rc != 0:
                raise _NfsCallError(rc, lib.error(ctx))
            return st

        try:
            st = self._retried(f"stat of {path!r}", lstat)
        except _NfsCallError as err:
            raise _file_error(path, err) from None
        return _entry_from_stat(rel, st)

    def fingerprint(self, stream: ReadStream, path: str) -> Fingerprint:
        """Size, mtime and ctime as the server has them: for a stream opened by
        ``open_entry``, what the READ replies carried (see ``_Nfs3Stream.after``), else
        one GETATTR on the open handle."""
        if isinstance(stream, _Nfs3Stream):
            return stream.after()
        if not isinstance(stream, _NfsReadStream):
            return super().fingerprint(stream, path)
        st = stream.getattr()
        return _fingerprint(st)

    def open(self, path: str) -> ReadStream:
        return self._open(path, None)

    def open_entry(self, entry: Entry) -> ReadStream:
        """Open for the copy: on NFSv3 one LOOKUP in the file's folder (its handle kept
        from the last files) instead of ``nfs_open``'s LOOKUP per path component, ACCESS
        and GETATTR; the LOOKUP's attributes are the file before the read (``opened``,
        with its ctime), and the stream's READs (several in flight for a big file) carry
        the attributes after it (``nfs3_rpc``). NFSv4 opens without the GETATTR: the
        scan's READDIRPLUS said it is a regular file of ``entry.size`` bytes, a path that
        is no longer one fails its first READ (then told apart with a GETATTR), and a
        different size shows as the reader counts."""
        if self.address.nfs_version == 3:
            return self._open_by_lookup(entry.path)
        return self._open(entry.path, entry.size)

    def _rpc_or_call_error(self) -> nfs3_rpc.Rpc:
        lib, ctx = self._c_or_call_error()
        if self._rpc is None or self._rpc_ctx != ctx:
            self._rpc = nfs3_rpc.Rpc(lib.rpc, ctx)
            self._rpc_ctx = ctx
        return self._rpc

    def _folder_handle(self, dir_abs: str) -> bytes:
        """The file handle of a folder, kept for the next files in it: one LOOKUP per
        folder down from its nearest kept ancestor, else (the source's top folder, or an
        answer that is not a plain folder) ``nfs_open``, which resolves the path as it
        would for a file in it, symlinked folders included."""
        fh = self._folders.get(dir_abs)
        if fh is not None:
            return fh
        top = self._root_abs
        if dir_abs == top or not dir_abs.startswith(top.rstrip("/") + "/"):
            return self._open_folder(dir_abs)
        names: list[str] = []  # the folders below the kept ancestor, deepest first
        path = dir_abs
        while True:
            parent, _, name = path.rpartition("/")
            parent = parent or "/"
            names.append(name)
            found = self._folders.get(parent)
            if found is not None or parent == top:
                fh = found if found is not None else self._open_folder(parent)
                break
            path = parent
        rpc = self._rpc_or_call_error()
        path = parent
        for name in reversed(names):
            call = _answered(rpc, rpc.lookup(fh, name.encode(), "LOOKUP"))
            if call.status or call.attrs is None or call.attrs.type != nfs3_rpc.NF3DIR:
                if call.missing:
                    self._folders.discard(path)  # it may have gone since it was kept
                return self._open_folder(dir_abs)
            path = f"{path.rstrip('/')}/{name}"
            fh = call.fh
            self._folders.put(path, fh)
        return fh

    def _open_folder(self, dir_abs: str) -> bytes:
        lib, ctx = self._c_or_call_error()
        handle = ctypes.c_void_p()
        rc = lib.nfs_open(ctx, dir_abs.encode(), os.O_RDONLY, ctypes.byref(handle))
        if rc != 0:
            raise _NfsCallError(rc, lib.error(ctx))
        opened: int = handle.value  # type: ignore[assignment]  # set when nfs_open succeeds
        try:
            fh = lib.rpc.handle_of(opened)
        finally:
            lib.nfs_close(ctx, opened)
        self._folders.put(dir_abs, fh)
        return fh

    def _open_by_lookup(self, path: str) -> ReadStream:
        rel = self._checked_rel(path)
        if not rel:
            raise NotAFile(path, "is a folder, not a file")
        parent, _, name = rel.rpartition("/")
        dir_abs = self._abs(parent)

        def lookup() -> tuple[nfs3_rpc.Rpc, nfs3_rpc.Call]:
            rpc = self._rpc_or_call_error()
            while True:
                cached = self._folders.get(dir_abs) is not None
                dir_fh = self._folder_handle(dir_abs)
                call = _answered(rpc, rpc.lookup(dir_fh, name.encode(), "LOOKUP"))
                if call.missing and cached:
                    # The folder may have gone since its handle was kept (the handle of a
                    # removed folder answers STALE, or NOENT while the server still knows
                    # it): look the folder up again, once.
                    self._folders.discard(dir_abs)
                    continue
                failure = call.failure()
                if failure is not None:
                    raise _NfsCallError(*failure)
                if call.attrs is None:  # a server may leave them out of the reply
                    got = _answered(rpc, rpc.getattr(call.fh, "GETATTR"))
                    if got.failure() is not None:
                        raise _NfsCallError(*got.failure())  # type: ignore[misc]
                    call.attrs = got.attrs
                return rpc, call

        try:
            rpc, call = self._retried(f"open of {path!r}", lookup)
        except _NfsCallError as err:
            raise _file_error(path, err) from None
        attrs = call.attrs
        assert attrs is not None
        if attrs.type != nfs3_rpc.NF3REG:
            if attrs.type == nfs3_rpc.NF3LNK:
                raise NotAFile(path, "is a symlink; symlinks are not followed")
            raise NotAFile(
                path, "is a folder" if attrs.type == nfs3_rpc.NF3DIR else "is not a regular file"
            )
        stream = _Nfs3Stream(self, rpc, call.fh, path, attrs)
        self._streams.add(stream)
        return stream

    def _open(self, path: str, known_size: int | None) -> ReadStream:
        rel = self._checked_rel(path)
        if not rel:
            raise NotAFile(path, "is a folder, not a file")
        # O_NOFOLLOW: a symlink (even one swapped in after the scan) is refused, not followed.
        # The path is absolute: libnfs resolves relative paths from the export root too
        # (it only prepends its cwd string), so ``nfs_chdir`` per folder saves no LOOKUPs;
        # measured here, small-file reads were no faster with it.
        flags = os.O_RDONLY | os.O_NOFOLLOW

        def nfs_open() -> int:
            lib, ctx = self._c_or_call_error()
            handle = ctypes.c_void_p()
            rc = lib.nfs_open(ctx, self._abs(rel).encode(), flags, ctypes.byref(handle))
            if rc != 0:
                raise _NfsCallError(rc, lib.error(ctx))
            return handle.value  # type: ignore[return-value]  # set when nfs_open succeeds

        try:
            fh = self._retried(f"open of {path!r}", nfs_open)
        except _NfsCallError as err:
            if err.errno == errno.ELOOP:
                raise NotAFile(path, "is a symlink; symlinks are not followed") from None
            raise _file_error(path, err) from None
        lib, ctx = _c_libnfs, self._ctx_p
        if known_size is not None:
            stream = _NfsReadStream(self, fh, path, known_size, unverified=True)
            self._streams.add(stream)
            return stream
        st = _NfsStat64()
        rc = lib.nfs_fstat64(ctx, fh, ctypes.byref(st))
        if rc != 0 or not stat_mod.S_ISREG(st.nfs_mode):
            failure = _NfsCallError(rc, lib.error(ctx)) if rc != 0 else None
            lib.nfs_close(ctx, fh)
            if failure is not None:
                raise _file_error(path, failure)
            kind = EntryKind.of_mode(st.nfs_mode)
            what = "a folder" if kind is EntryKind.DIR else "not a regular file"
            raise NotAFile(path, f"is {what}")
        stream = _NfsReadStream(self, fh, path, st.nfs_size)
        stream.opened = _fingerprint(st)
        self._streams.add(stream)
        return stream


class _FolderHandles:
    """Folder handles by libnfs path, the most recent ``FOLDER_HANDLES``; one set per
    source and its clones (the copy threads of a process), which share the folders of
    their subtasks. A handle is the server's, not the connection's: it stays good across
    reconnects, and one that went stale (the folder was removed or replaced) is dropped
    where its LOOKUP says so."""

    def __init__(self) -> None:
        self._handles: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get(self, path: str) -> bytes | None:
        return self._handles.get(path)

    def put(self, path: str, fh: bytes) -> None:
        with self._lock:
            handles = self._handles
            handles.pop(path, None)
            while len(handles) >= FOLDER_HANDLES:
                del handles[next(iter(handles))]
            handles[path] = fh

    def discard(self, path: str) -> None:
        with self._lock:
            self._handles.pop(path, None)

    def clear(self) -> None:
        with self._lock:
            self._handles.clear()


class _Task:
    """One folder a helper lists ahead of the walk."""

    __slots__ = ("rel", "abs_path", "done", "items", "error", "positions", "cancelled")

    def __init__(self, rel: str, abs_path: str) -> None:
        self.rel = rel
        self.abs_path = abs_path
        self.done = threading.Event()
        self.items: list[_Item] | None = None
        self.error: BaseException | None = None
        self.positions: _Positions | None = None
        self.cancelled = False


class _HelperUnavailable(Exception):
    """A helper could not connect: the walk lists that folder itself."""


def _folder_positions(items: list[_Item]) -> _Positions:
    """Indices and names of the items the walk will list (folders with usable names)."""
    indices: list[int] = []
    names: list[str] = []
    for i, item in enumerate(items):
        if item[1] & 0o170000 == stat_mod.S_IFDIR and _valid_name(item[0]):
            indices.append(i)
            names.append(item[0])
    return indices, names


def _helper_loop(tasks: queue.SimpleQueue[_Task | None], helper: NfsSource) -> None:
    """A helper thread: lists folders with its own context until told to stop (None)."""
    broken = False
    try:
        while (task := tasks.get()) is not None:
            if task.cancelled:
                continue
            try:
                if broken:
                    raise _HelperUnavailable()
                task.items = helper._list_dir(task.abs_path)
            except AddressError:  # could not connect: let the walk list it
                broken = True
                task.error = _HelperUnavailable()
            except Exception as exc:  # noqa: BLE001 - handed to the walk, raised there
                task.error = exc
            finally:
                task.done.set()
    finally:
        helper.close()  # in this thread: its context is used by no other


class _Prefetcher:
    """Lists, on helper threads, the folders a walk will enter next.

    Each helper has its own ``NfsSource`` (its own libnfs context and connection); the
    listing RPCs run in ctypes calls without the GIL, so they overlap the walk. Folders are
    submitted in the order the walk will enter them as far as it is known: the rest of
    every open folder, descending into listings already done (the sub-folders of a folder
    still being listed are not known yet; its later siblings are taken meanwhile). Bounds:
    at most ``PREFETCH_FOLDERS`` listings submitted and not yet taken by the walk, at most
    two per helper in flight, and no new submission while the finished ones hold
    ``PREFETCH_ENTRIES`` entries. The first ``PREFETCH_AFTER`` folders are listed by the
    walk alone: a small tree is done before helpers (a mount each) would pay off.
    """

    def __init__(self, source: NfsSource, stack: list[_Frame]) -> None:
        self._source = source
        self._stack = stack  # the walk's own frames, read (never changed) here
        self._pid = os.getpid()
        self._tasks: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self.helpers: list[NfsSource] = []
        self._pending: dict[str, _Task] = {}  # submitted, not yet taken by the walk
        self._listed = 1  # the walk listed its top folder itself
        self._closed = False
        source._walks.add(self)

    def _start(self) -> None:
        for k in range(PREFETCH_THREADS):
            helper = NfsSource(self._source.address)
            thread = threading.Thread(
                target=_helper_loop,
                args=(self._tasks, helper),
                name=f"sharelift-nfs-list-{k}",
                daemon=True,
            )
            self.helpers.append(helper)
            self._threads.append(thread)
            thread.start()

    @property
    def running(self) -> bool:
        return bool(self._threads) and not self._closed and self._pid == os.getpid()

    def take(self, rel: str, abs_path: str) -> tuple[list[_Item], _Positions | None]:
        """The listing of folder ``rel``: the prefetched one, or listed here and now.

        Raises ``_NfsCallError`` as ``NfsSource._list_dir`` does.
        """
        if self._pid != os.getpid():
            self._abandon()
        task = self._pending.pop(rel, None)
        if task is not None and not task.done.is_set():
            self.top_up()  # keep the helpers busy while the walk waits
            task.done.wait()
        if task is None or isinstance(task.error, _HelperUnavailable):
            self._listed += 1
            if not self._threads and not self._closed and self._listed > PREFETCH_AFTER:
                self._start()
            self.top_up()
            return self._source._list_dir(abs_path), None
        if task.error is not None:
            raise task.error
        assert task.items is not None
        return task.items, task.positions

    def top_up(self) -> None:
        """Submit the next folders of the walk, within the bounds."""
        if not self.running:
            return
        pending = self._pending
        room = PREFETCH_FOLDERS - len(pending)
        if room <= 0:
            return
        in_flight = held = 0
        for task in pending.values():
            if not task.done.is_set():
                in_flight += 1
            elif task.items is not None:
                held += len(task.items)
        room = min(room, 2 * PREFETCH_THREADS - in_flight)
        if room <= 0 or held >= PREFETCH_ENTRIES:
            return
        for rel in self._upcoming():
            task = _Task(rel, self._source._abs(rel))
            pending[rel] = task
            self._tasks.put(task)
            room -= 1
            if room <= 0:
                break

    def _upcoming(self) -> Iterator[str]:
        """Folders not submitted yet, in the order the walk will reach them (as known)."""
        for frame in reversed(self._stack):
            if frame[3] is None:
                frame[3] = _folder_positions(frame[1])
            yield from self._under(frame[0], frame[3], frame[2])

    def _under(self, prefix: str, positions: _Positions, start: int) -> Iterator[str]:
        indices, names = positions
        for k in range(bisect.bisect_left(indices, start), len(indices)):
            rel = prefix + names[k]
            task = self._pending.get(rel)
            if task is None:
                yield rel
            elif task.done.is_set() and task.items is not None:
                if task.positions is None:
                    task.positions = _folder_positions(task.items)
                yield from self._under(rel + "/", task.positions, 0)

    def _abandon(self) -> None:
        """In a forked child: the helper threads are the parent's; carry on without them."""
        self._closed = True
        self._pending = {}
        self._threads = []
        self._pid = os.getpid()

    def close(self) -> None:
        """Stop the helpers and close their contexts (waits for listings in flight)."""
        if self._closed:
            return
        self._closed = True
        for task in self._pending.values():
            task.cancelled = True
        self._pending.clear()
        if self._pid != os.getpid():
            return
        for _ in self._threads:
            self._tasks.put(None)
        for thread in self._threads:
            thread.join()
        self._source._walks.discard(self)


class _NfsReadStream:
    """One open NFS file: ``read(n)`` in any size, errors turned into per-file errors."""

    def __init__(
        self, source: NfsSource, fh: int, path: str, size: int, *, unverified: bool = False
    ) -> None:
        self._source = source
        self._lib: _CLib = _c_libnfs
        self._ctx = source._ctx  # the SWIG object: tells whether the source closed since
        self._ctx_p = source._ctx_p
        self._fh = fh  # struct nfsfh *, closed exactly once
        self.path = path
        self.size = size  # as the server announced it at open (or the scan saw it)
        # Opened on the scan's word (``open_entry``): until a READ succeeds, a failing READ
        # may mean the path is no longer a regular file, which a GETATTR then tells.
        self._unverified = unverified
        self._pos = 0
        self._eof = False  # a short read at or past ``size``: the server said end of file
        self._buf = bytearray(0)
        self._cbuf: Any = None  # ``self._buf`` as a ctypes array, for nfs_read
        self._closed = False
        self.opened: Fingerprint | None = None  # set by ``open``, which has the GETATTR

    def getattr(self) -> _NfsStat64:
        """GETATTR of the open file (``nfs_fstat64``)."""
        self._check_open()
        st = _NfsStat64()
        rc = self._lib.nfs_fstat64(self._ctx_p, self._fh, ctypes.byref(st))
        if rc != 0:
            raise _file_error(self.path, _NfsCallError(rc, self._lib.error(self._ctx_p)))
        return st

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("I/O operation on a closed NFS file")
        if self._source._pid != os.getpid():
            raise ValueError("an NFS file cannot be read in another process than it was opened in")
        if self._source._ctx is not self._ctx:
            self._closed = True  # the context (and with it our handle) is gone
            raise ValueError("the NFS source of this file was closed")

    def _read_into(self, cbuf: Any, count: int) -> int:
        """``nfs_read`` of ``count`` bytes into the ctypes array ``cbuf`` (GIL released)."""
        n = self._lib.nfs_read(self._ctx_p, self._fh, count, cbuf)
        if n < 0:
            err = _NfsCallError(n, self._lib.error(self._ctx_p))
            if self._unverified:
                self._refuse_if_not_a_file()
            if err.errno == errno.ESTALE:
                raise SourceFileChanged(
                    self.path, "source file was deleted or replaced while being read"
                )
            raise _file_error(self.path, err)
        self._unverified = False
        return int(n)

    def _refuse_if_not_a_file(self) -> None:
        """Raise ``NotAFile`` when the path now names a folder, fifo or device."""
        st = _NfsStat64()
        if self._lib.nfs_fstat64(self._ctx_p, self._fh, ctypes.byref(st)) != 0:
            return  # the READ's own error says more
        if not stat_mod.S_ISREG(st.nfs_mode):
            kind = EntryKind.of_mode(st.nfs_mode)
            what = "a folder" if kind is EntryKind.DIR else "not a regular file"
            raise NotAFile(self.path, f"is {what}")

    def read(self, size: int = -1, /) -> bytes:
        self._check_open()
        if size is None or size < 0:
            pieces = []
            while chunk := self.read(READ_CHUNK):
                pieces.append(chunk)
            return b"".join(pieces)
        if size == 0 or self._eof:
            return b""
        remaining = self.size - self._pos
        # Ask for one byte more than the file should still hold: a short answer is the
        # server's end of file (remembered, which saves a READ per small file), a full one
        # means the file grew. Past the announced size, read on in modest pieces.
        want = min(size, remaining + 1) if remaining >= 0 else min(size, 65536)
        if remaining == 0:
            want = min(size, 65536)
        if len(self._buf) < want:
            self._buf = bytearray(want)
            self._cbuf = (ctypes.c_char * want).from_buffer(self._buf)
        n = self._read_into(self._cbuf, want)
        self._pos += n
        if n < want and self._pos >= self.size:
            self._eof = True
        if n == len(self._buf):
            return bytes(self._buf)
        return bytes(memoryview(self._buf)[:n])

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Read straight into ``buffer`` when it is a bytearray (no copy)."""
        self._check_open()
        if isinstance(buffer, bytearray):
            if not buffer or self._eof:
                return 0
            count = len(buffer)
            cbuf = (ctypes.c_char * count).from_buffer(buffer)
            try:
                n = self._read_into(cbuf, count)
            finally:
                del cbuf  # releases the buffer export: the caller may resize it again
            self._pos += n
            return n
        data = self.read(len(buffer))
        memoryview(buffer)[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._cbuf = None
        if self._source._ctx is self._ctx and self._source._pid == os.getpid():
            self._lib.nfs_close(self._ctx_p, self._fh)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> _NfsReadStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class _Nfs3Stream:
    """A file opened by ``open_entry`` on NFSv3: READs sent through ``nfs3_rpc``.

    Up to ``READS_IN_FLIGHT`` READs of ``READ_CHUNK`` bytes are in flight ahead of the
    reader (one for a small file). The READs ask up to one byte past the size the LOOKUP
    announced: a file that grew shows at once (the reader counts bytes), and the reply's
    end-of-file flag saves a READ at the end. Every reply's attributes are kept (``after``).
    """

    def __init__(
        self, source: NfsSource, rpc: nfs3_rpc.Rpc, fh: bytes, path: str, attrs: nfs3_rpc.Attrs
    ) -> None:
        self._source = source
        self._ctx = source._ctx
        self._rpc = rpc
        self._fh = fh
        self.path = path
        self.size = attrs.size
        self.opened = Fingerprint(attrs.size, attrs.mtime_ns, attrs.ctime_ns)
        self._before = attrs.key()
        self._chunk = max(4096, min(READ_CHUNK, rpc.readmax or READ_CHUNK))
        self._next = 0  # offset of the next READ to send
        self._in_flight: collections.deque[tuple[nfs3_rpc.Call, int]] = collections.deque()
        self._buffers: list[Any] = []  # READ buffers free for the next READs (big files)
        self._left = b""  # bytes of the last reply beyond what the reader asked
        self._eof = False
        self._last: nfs3_rpc.Attrs | None = None
        self._changed = False
        self._replies = 0
        self._closed = False

    def after(self) -> Fingerprint:
        """The file's fingerprint after the read. A file read in one READ: that reply's
        attributes (the server takes them after the data, so they are the file after the
        read). A reply whose attributes differ from the LOOKUP's: those (the file
        changed). Otherwise one GETATTR, sent now: the READs of a bigger file run ahead
        of the reader, and a change while the reader still works through their bytes
        must show as it did with a GETATTR after the whole read."""
        self._check_open()
        found = self._last
        if found is None or not (self._changed or (self._eof and self._replies == 1)):
            rpc = self._rpc
            try:
                call = _answered(rpc, rpc.getattr(self._fh, "GETATTR"))
                failure = call.failure()
                if failure is not None:
                    raise _NfsCallError(*failure)
            except _NfsCallError as err:
                raise _file_error(self.path, err) from None
            found = call.attrs
            assert found is not None
        return Fingerprint(found.size, found.mtime_ns, found.ctime_ns)

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("I/O operation on a closed NFS file")
        if self._source._pid != os.getpid():
            raise ValueError("an NFS file cannot be read in another process than it was opened in")
        if self._source._ctx is not self._ctx or self._source._rpc is not self._rpc:
            self._closed = True
            raise ValueError("the NFS source of this file was closed")

    def _send(self, *, past_end: bool = False) -> None:
        """Top up the READs in flight up to one byte past the announced size; with
        ``past_end`` (the reader wants more and none is in flight: the file grew), one
        READ beyond."""
        end = self.size + 1
        in_flight = self._in_flight
        sent = False
        while len(in_flight) < READS_IN_FLIGHT:
            start = self._next
            if start >= end and (sent or not past_end):
                return
            sent = True
            count = min(self._chunk, end - start) if start < end else self._chunk
            into = None
            if count >= BUFFERED_READ:
                into = self._buffers.pop() if self._buffers else (ctypes.c_char * self._chunk)()
            try:
                call = self._rpc.read(self._fh, start, count, "READ", into)
            except nfs3_rpc.RpcError as exc:
                raise _file_error(self.path, _NfsCallError(exc.rc, exc.message)) from None
            in_flight.append((call, count))
            self._next = start + count
            if start >= end:
                return

    def _take(self) -> bytes:
        """The next reply's bytes, in file order."""
        if not self._in_flight:
            self._send(past_end=True)
        call, count = self._in_flight.popleft()
        self._send()  # the next READs travel while this one is waited for
        try:
            _answered(self._rpc, call)
            failure = call.failure()
            if failure is not None:
                raise _NfsCallError(*failure)
        except _NfsCallError as err:
            self._in_flight.clear()
            if err.errno == errno.ESTALE:
                raise SourceFileChanged(
                    self.path, "source file was deleted or replaced while being read"
                ) from None
            raise _file_error(self.path, err) from None
        self._replies += 1
        attrs = call.attrs
        if attrs is not None and not self._changed:
            self._last = attrs
            self._changed = attrs.key() != self._before
        if call.into is not None:
            data = ctypes.string_at(call.into, call.count)
            self._buffers.append(call.into)
        else:
            data = call.data
        if call.eof or not data:
            self._eof = True
            self._in_flight.clear()  # replies still to come are dropped when they come
        elif len(data) < count:  # a short READ that is not the end: send again from here
            self._in_flight.clear()
            self._next = call.offset + len(data)
        return data

    def read(self, size: int = -1, /) -> bytes:
        self._check_open()
        if size is None or size < 0:
            pieces = []
            while chunk := self.read(READ_CHUNK):
                pieces.append(chunk)
            return b"".join(pieces)
        if size == 0:
            return b""
        data = self._left
        if not data:
            if self._eof:
                return b""
            data = self._take()
        if len(data) > size:
            self._left = data[size:]
            return data[:size]
        self._left = b""
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.read(len(buffer))
        memoryview(buffer)[: len(data)] = data
        return len(data)

    def close(self) -> None:
        # NFSv3 has no CLOSE; READs still in flight are answered into nothing.
        self._closed = True
        self._in_flight.clear()
        self._left = b""

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> _Nfs3Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- helpers ---------------------------------------------------------------------------


def _answered(rpc: nfs3_rpc.Rpc, call: nfs3_rpc.Call) -> nfs3_rpc.Call:
    """``rpc.wait(call)``, a call without an NFS answer raised as ``_NfsCallError``."""
    try:
        return rpc.wait(call)
    except nfs3_rpc.RpcError as exc:
        raise _NfsCallError(exc.rc, exc.message) from None


def _entry_from_stat(rel: str, st: Any) -> Entry:
    mode = st.nfs_mode
    kind = EntryKind.of_mode(mode)
    return Entry(
        rel,
        kind,
        size=st.nfs_size if kind is EntryKind.FILE else 0,
        mtime_ns=_signed64(st.nfs_mtime) * 1_000_000_000 + st.nfs_mtime_nsec,
        mode=stat_mod.S_IMODE(mode),
    )


def _signed64(value: int) -> int:
    """``struct nfs_stat_64`` holds times as uint64: a time before 1970 (NFSv4) wraps."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _unreachable(rel: str, prefix: str, code: int) -> Entry:
    """An entry its folder lists but will not let us reach (``mode`` is ``-errno``)."""
    folder = prefix.rstrip("/") or "the top folder"
    if -code in (errno.EACCES, errno.EPERM):
        cause = f"permission denied (folder {folder!r} can be listed but not searched)"
    else:
        cause = f"the server gave no attributes for it ({_strerror(code)})"
    return Entry(rel, EntryKind.OTHER, error=f"cannot reach it: {cause}")


def _shut_folder(children: list[_Item]) -> str | None:
    """The error of a folder that lists its names but lets none of them be reached."""
    if children and all(item[1] < 0 for item in children):
        if any(-item[1] in (errno.EACCES, errno.EPERM) for item in children):
            return (
                "cannot enter folder: permission denied (it can be listed but not searched; "
                "each entry in it is listed as an error)"
            )
        return "cannot enter folder: the server gave no attributes for its entries"
    return None


def _fingerprint(st: _NfsStat64) -> Fingerprint:
    """Size, mtime and ctime as ``_entry_from_stat`` reads them (so they compare)."""
    return Fingerprint(
        st.nfs_size,
        _signed64(st.nfs_mtime) * 1_000_000_000 + st.nfs_mtime_nsec,
        _signed64(st.nfs_ctime) * 1_000_000_000 + st.nfs_ctime_nsec,
    )


def _listing_error(err: _NfsCallError) -> str:
    if err.is_permission():
        return "cannot list folder: permission denied"
    return f"cannot list folder: {err.message}"


def _file_error(path: str, err: _NfsCallError) -> FileError:
    if err.is_not_found():
        return SourceFileNotFound(path, "source file not found (deleted or renamed during the run)")
    if err.is_permission():
        return SourceFilePermissionDenied(path, "permission denied reading the source file")
    if err.errno == errno.EISDIR:
        return NotAFile(path, "is a folder, not a file")
    if err.is_connection():
        return FileError(path, f"NFS server connection failed: {err.message}", transient=True)
    return FileError(path, f"cannot read source file: {err.message}")


# -- MOUNT protocol EXPORT call (to tell "no such export" from "not allowed") --------------


def _rpc_call(
    host: str, port: int, prog: int, vers: int, proc: int, args: bytes, timeout: float
) -> bytes:
    """One ONC RPC call over TCP with AUTH_NONE; the accepted reply's results."""
    xid = int.from_bytes(os.urandom(4), "big")
    call = struct.pack(">IIIIII", xid, 0, 2, prog, vers, proc) + struct.pack(">IIII", 0, 0, 0, 0)
    call += args
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(struct.pack(">I", 0x80000000 | len(call)) + call)
        reply = b""
        last = False
        while not last:
            header = _recv_exact(s, 4)
            (mark,) = struct.unpack(">I", header)
            last = bool(mark & 0x80000000)
            reply += _recv_exact(s, mark & 0x7FFFFFFF)
    rxid, mtype, reply_stat = struct.unpack(">III", reply[:12])
    if rxid != xid or mtype != 1 or reply_stat != 0:
        raise OSError("RPC call denied")
    _flavor, verf_len = struct.unpack(">II", reply[12:20])
    pos = 20 + ((verf_len + 3) & ~3)
    (accept_stat,) = struct.unpack(">I", reply[pos : pos + 4])
    if accept_stat != 0:
        raise OSError(f"RPC call not accepted ({accept_stat})")
    return reply[pos + 4 :]


def _recv_exact(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise OSError("connection closed during an RPC reply")
        data += chunk
    return data


def _xdr_string(data: bytes, pos: int) -> tuple[bytes, int]:
    (length,) = struct.unpack(">I", data[pos : pos + 4])
    start = pos + 4
    return data[start : start + length], start + ((length + 3) & ~3)


def _list_exports(host: str, mount_port: int | None, timeout: float = 5.0) -> set[str] | None:
    """The export paths the server announces (MOUNTPROC3_EXPORT), or None if unknown."""
    try:
        if not mount_port:
            # Portmapper GETPORT(prog=MOUNT, vers=3, proto=TCP).
            res = _rpc_call(
                host, PORTMAPPER_PORT, 100000, 2, 3, struct.pack(">IIII", 100005, 3, 6, 0), timeout
            )
            (mount_port,) = struct.unpack(">I", res[:4])
            if not mount_port:
                return None
        res = _rpc_call(host, mount_port, 100005, 3, 5, b"", timeout)
        exports: set[str] = set()
        pos = 0
        while struct.unpack(">I", res[pos : pos + 4])[0]:
            path, pos = _xdr_string(res, pos + 4)
            exports.add(path.decode("utf-8", "replace"))
            while struct.unpack(">I", res[pos : pos + 4])[0]:  # groups
                _group, pos = _xdr_string(res, pos + 4)
            pos += 4
        return exports
    except (OSError, struct.error, ValueError):
        return None
