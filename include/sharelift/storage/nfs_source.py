"""An NFS export as a source, through libnfs (a userspace NFS client: no mount, no root).

Why processes, not threads: the libnfs Python binding (SWIG over the synchronous libnfs
API) never releases the GIL, so a second thread in the same process only waits for the
first. One libnfs context is also one TCP connection and is not thread-safe. The engine
therefore parallelises NFS reads across processes (``features.gil_bound``); each process
builds its own ``NfsSource`` from the ``SourceAddress``. An ``NfsSource`` pickles as its
address (the connection is made again, lazily, on first use in the other process), and a
source inherited through ``fork`` notices the new pid and reconnects instead of sharing
the parent's socket. Open streams are not inherited: open files in the process that reads.

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
* ``open`` uses ``O_NOFOLLOW`` (libnfs returns ELOOP for a symlink) and then checks with
  ``fstat`` that it got a regular file (libnfs happily "opens" folders and fifos).
* Every RPC has a timeout (``RPC_TIMEOUT_MS``): the binding does not wrap
  ``nfs_set_timeout``, so it is called through ctypes on the same libnfs. Without it a
  server that stops answering (but keeps the connection) blocks the caller for ever.

Binding quirks handled here: a name that is not valid UTF-8 raises ``UnicodeDecodeError``
when read from ``nfsdirent.name`` (we read the raw ``char *`` with ctypes instead), path
arguments must be ``str`` (``bytes`` raise ``TypeError``) and a ``str`` holding a lone
surrogate crashes the interpreter with a segfault (we refuse such paths before calling).
Functions return ``-errno`` and leave a message in ``nfs_get_error``. Handles are raw C
pointers (using one after ``nfs_close``/``nfs_destroy_context`` is a use-after-free), so
every handle here is closed exactly once and streams refuse to read after their source
closed or in another process.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import stat as stat_mod
import struct
import weakref
from collections.abc import Iterator
from typing import Any

from sharelift.addresses import SourceAddress
from sharelift.errors import (
    AddressError,
    ConfigError,
    FileError,
    NotAFile,
    SourceFileChanged,
    SourceFileNotFound,
    SourceFilePermissionDenied,
)
from sharelift.storage.base import Entry, EntryKind, ReadStream, Source, SourceFeatures

# Measured on the test bed (ganesha on loopback, libnfs 4.0, READ max 1 MiB): 1 MiB reads
# are the fastest with the copy into ``bytes`` counted; larger reads fall out of the CPU
# caches and 256 KiB pays the per-call overhead. See the module's tests for the figures.
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
_NAME_OFFSET = ctypes.sizeof(ctypes.c_void_p)  # struct nfsdirent { next; char *name; ... }


def _libnfs() -> Any:
    try:
        import libnfs
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise ImportError(
            "the libnfs Python binding is missing: install libnfs-dev (Debian) and "
            "`pip install libnfs`"
        ) from exc
    return libnfs


_c_libnfs: Any = None


def _set_timeout(ctx: Any, milliseconds: int) -> bool:
    """``nfs_set_timeout`` through ctypes: the binding does not wrap it.

    The function is called in the very libnfs the binding is linked to (found in
    /proc/self/maps), with the context pointer the SWIG object holds. False when that
    library cannot be found (then calls have no timeout).
    """
    global _c_libnfs
    if _c_libnfs is None:
        path = None
        try:
            with open("/proc/self/maps") as maps:
                for line in maps:
                    if "/libnfs.so" in line:
                        path = line.split(None, 5)[-1].strip()
                        break
        except OSError:
            pass
        if path is None:
            _c_libnfs = False
            return False
        try:
            lib = ctypes.CDLL(path)
            lib.nfs_set_timeout.argtypes = [ctypes.c_void_p, ctypes.c_int]
            lib.nfs_set_timeout.restype = None
            _c_libnfs = lib
        except (OSError, AttributeError):
            _c_libnfs = False
    if not _c_libnfs:
        return False
    _c_libnfs.nfs_set_timeout(int(ctx), milliseconds)
    return True


def _kind(mode: int) -> EntryKind:
    if stat_mod.S_ISREG(mode):
        return EntryKind.FILE
    if stat_mod.S_ISDIR(mode):
        return EntryKind.DIR
    if stat_mod.S_ISLNK(mode):
        return EntryKind.SYMLINK
    return EntryKind.OTHER


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
        return self.errno in (errno.EIO, errno.EFAULT, errno.EINTR, errno.ETIMEDOUT) and any(
            word in self.message for word in ("service", "RPC", "connect", "timed out")
        )


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
        self.root_rel = _split_rel(address.path)
        # Every path given to libnfs is absolute from the export root.
        self._root_abs = "/" + self.root_rel if self.root_rel else "/"
        self._nfs: Any = None
        self._ctx: Any = None
        self._pid = 0
        self._streams: weakref.WeakSet[_NfsReadStream] = weakref.WeakSet()

    # -- pickling and fork: the address is the whole state ------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {"address": self.address}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["address"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"NfsSource({self.address.name!r}, {self.display_url()!r})"

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
            _set_timeout(ctx, RPC_TIMEOUT_MS)
            rc = nfs.nfs_mount(ctx, server, self.export)
            if rc != 0:
                raise _NfsCallError(rc, nfs.nfs_get_error(ctx) or _strerror(rc))
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
        try:
            self._nfs, self._ctx = self._mount()
        except _NfsCallError as exc:
            raise AddressError(self.address.name, self._mount_failure(exc)) from None
        self._pid = os.getpid()
        return self._nfs, self._ctx

    def close(self) -> None:
        for stream in list(self._streams):
            stream.close()
        ctx, self._ctx = self._ctx, None
        if ctx is not None and self._pid == os.getpid():
            self._nfs.nfs_destroy_context(ctx)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: nothing useful to do
            pass

    # -- paths ---------------------------------------------------------------------------

    def _rel(self, path: str) -> str:
        return _split_rel(path)

    def _abs(self, rel: str) -> str:
        """The libnfs path (absolute from the export root) of a path relative to the source."""
        if not rel:
            return self._root_abs
        return f"{self._root_abs.rstrip('/')}/{rel}"

    def display_url(self, path: str = "") -> str:
        base = self.address.display_url()
        rel = self._rel(path) if path else ""
        return f"{base}/{rel}" if rel else base

    # -- check ---------------------------------------------------------------------------

    def check(self) -> None:
        """Raise ``AddressError`` naming the cause: unreachable, refused, missing export or
        sub-folder, or no permission to list it."""
        self._probe_ports()
        nfs, ctx = self._context()
        where = self._describe_root()
        st = nfs.nfs_stat_64()
        rc = nfs.nfs_lstat64(ctx, self._root_abs, st)
        if rc != 0:
            err = _NfsCallError(rc, nfs.nfs_get_error(ctx))
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

    def _list_dir(self, abs_path: str) -> list[tuple[str, int, int, int]]:
        """(name, mode, size, mtime_ns) of every entry of one folder, sorted by name.

        Names that are not valid UTF-8 come back decoded with 'surrogateescape'.
        """
        nfs, ctx = self._context()
        C = nfs.libnfs._libnfs
        handle = nfs.new_NFSDirHandle()
        try:
            rc = nfs.nfs_opendir(ctx, abs_path, handle)
            if rc != 0:
                raise _NfsCallError(rc, nfs.nfs_get_error(ctx))
            d = nfs.NFSDirHandle_value(handle)
        finally:
            nfs.delete_NFSDirHandle(handle)  # the pointer cell, not the listing
        out = []
        get_name = C.nfsdirent_name_get
        get_mode = C.nfsdirent_mode_get
        get_type = C.nfsdirent_type_get
        get_size = C.nfsdirent_size_get
        get_mtime = C.nfsdirent_mtime_get
        get_mtime_nsec = C.nfsdirent_mtime_nsec_get
        get_sec = C.timeval_tv_sec_get
        readdir = nfs.nfs_readdir
        try:
            while True:
                de = readdir(ctx, d)
                if de is None:
                    break
                try:
                    name = get_name(de)
                except UnicodeDecodeError:
                    raw = ctypes.c_char_p.from_address(int(de.this) + _NAME_OFFSET).value or b""
                    name = raw.decode("utf-8", "surrogateescape")
                if name == "." or name == "..":
                    continue
                mode = get_mode(de)
                if not stat_mod.S_IFMT(mode):
                    mode |= _NF3_TYPE_BITS.get(get_type(de), 0)
                mtime_ns = get_sec(get_mtime(de)) * 1_000_000_000 + get_mtime_nsec(de)
                out.append((name, mode, get_size(de), mtime_ns))
        finally:
            nfs.nfs_closedir(ctx, d)
        out.sort(key=lambda item: item[0])
        return out

    def walk(self, top: str = "") -> Iterator[Entry]:
        top_rel = self._rel(top)
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
        stack: list[tuple[str, Iterator[tuple[str, int, int, int]]]] = [(prefix, iter(items))]
        while stack:
            prefix, it = stack[-1]
            for name, mode, size, mtime_ns in it:
                rel = prefix + name
                kind = _kind(mode)
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
                try:
                    children = self._list_dir(self._abs(rel))
                except _NfsCallError as err:
                    if err.is_connection():
                        raise self._lost(rel, err) from None
                    if err.errno == errno.ENOENT:
                        continue  # removed between the two listings: it is simply not there
                    yield Entry(
                        rel, EntryKind.DIR, mtime_ns=mtime_ns, mode=perm, error=_listing_error(err)
                    )
                    continue
                yield Entry(rel, EntryKind.DIR, mtime_ns=mtime_ns, mode=perm)
                stack.append((rel + "/", iter(children)))
                break
            else:
                stack.pop()

    def _lost(self, rel: str, err: _NfsCallError) -> AddressError:
        """A dead connection ends the walk: every later folder would fail the same way."""
        return AddressError(
            self.address.name,
            f"lost the connection to the NFS server {self.address.host} while listing "
            f"{rel or 'the top folder'!r}: {err.message}",
        )

    # -- stat and open -------------------------------------------------------------------

    def _checked_rel(self, path: str) -> str:
        rel = self._rel(path)
        if not _valid_name(rel):
            raise FileError(path, "name is not valid UTF-8; it cannot be read through libnfs")
        return rel

    def stat(self, path: str) -> Entry:
        rel = self._checked_rel(path)
        nfs, ctx = self._context()
        st = nfs.nfs_stat_64()
        rc = nfs.nfs_lstat64(ctx, self._abs(rel), st)
        if rc != 0:
            raise _file_error(path, _NfsCallError(rc, nfs.nfs_get_error(ctx)))
        return _entry_from_stat(rel, st)

    def open(self, path: str) -> ReadStream:
        rel = self._checked_rel(path)
        if not rel:
            raise NotAFile(path, "is a folder, not a file")
        nfs, ctx = self._context()
        handle = nfs.new_NFSFileHandle()
        # O_NOFOLLOW: a symlink (even one swapped in after the scan) is refused, not followed.
        # The path is absolute: libnfs resolves relative paths from the export root too
        # (it only prepends its cwd string), so ``nfs_chdir`` per folder saves no LOOKUPs;
        # measured here, small-file reads were no faster with it.
        try:
            rc = nfs.nfs_open(ctx, self._abs(rel), os.O_RDONLY | os.O_NOFOLLOW, handle)
            if rc != 0:
                err = _NfsCallError(rc, nfs.nfs_get_error(ctx))
                if err.errno == errno.ELOOP:
                    raise NotAFile(path, "is a symlink; symlinks are not followed")
                raise _file_error(path, err)
            fh = nfs.NFSFileHandle_value(handle)
        finally:
            nfs.delete_NFSFileHandle(handle)  # the pointer cell, not the open file
        st = nfs.nfs_stat_64()
        rc = nfs.nfs_fstat64(ctx, fh, st)
        if rc != 0 or not stat_mod.S_ISREG(st.nfs_mode):
            failure = _NfsCallError(rc, nfs.nfs_get_error(ctx)) if rc != 0 else None
            nfs.nfs_close(ctx, fh)
            if failure is not None:
                raise _file_error(path, failure)
            kind = _kind(st.nfs_mode)
            what = "a folder" if kind is EntryKind.DIR else "not a regular file"
            raise NotAFile(path, f"is {what}")
        stream = _NfsReadStream(self, ctx, fh, path, st.nfs_size)
        self._streams.add(stream)
        return stream


class _NfsReadStream:
    """One open NFS file: ``read(n)`` in any size, errors turned into per-file errors."""

    def __init__(self, source: NfsSource, ctx: Any, fh: Any, path: str, size: int) -> None:
        self._source = source
        self._nfs = source._nfs
        self._ctx = ctx
        self._fh = fh
        self.path = path
        self.size = size  # as the server announced it at open
        self._pos = 0
        self._eof = False  # a short read at or past ``size``: the server said end of file
        self._buf = bytearray(0)
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("I/O operation on a closed NFS file")
        if self._source._pid != os.getpid():
            raise ValueError("an NFS file cannot be read in another process than it was opened in")
        if self._source._ctx is not self._ctx:
            self._closed = True  # the context (and with it our handle) is gone
            raise ValueError("the NFS source of this file was closed")

    def _read_into(self, buf: bytearray, count: int) -> int:
        n = self._nfs.nfs_read(self._ctx, self._fh, count, buf)
        if n < 0:
            err = _NfsCallError(n, self._nfs.nfs_get_error(self._ctx))
            if err.errno == errno.ESTALE:
                raise SourceFileChanged(
                    self.path, "source file was deleted or replaced while being read"
                )
            raise _file_error(self.path, err)
        return int(n)

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
        n = self._read_into(self._buf, want)
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
            n = self._read_into(buffer, len(buffer))
            self._pos += n
            return n
        data = self.read(len(buffer))
        memoryview(buffer)[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._source._ctx is self._ctx and self._source._pid == os.getpid():
            self._nfs.nfs_close(self._ctx, self._fh)

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


# -- helpers ---------------------------------------------------------------------------


def _split_rel(path: str) -> str:
    """'/a//b/./c/' -> 'a/b/c'; refuses '..'. Backslashes are name characters on NFS."""
    parts = [p for p in (path or "").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ConfigError("path", f"must stay inside the source root, got {path!r}")
    return "/".join(parts)


def _entry_from_stat(rel: str, st: Any) -> Entry:
    mode = st.nfs_mode
    kind = _kind(mode)
    return Entry(
        rel,
        kind,
        size=st.nfs_size if kind is EntryKind.FILE else 0,
        mtime_ns=st.nfs_mtime * 1_000_000_000 + st.nfs_mtime_nsec,
        mode=stat_mod.S_IMODE(mode),
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
        return FileError(path, f"NFS server connection failed: {err.message}")
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
