"""NFSv3 LOOKUP, READ and GETATTR sent through libnfs's RPC layer, several in flight.

Why not the file API (``nfs_open``/``nfs_read``/``nfs_fstat64``): ``nfs_open`` looks the
path up from the export root, one LOOKUP per component, and sends an ACCESS; ``nfs_read``
waits for each READ before the next is sent and drops the attributes and the end-of-file
flag every READ reply carries, so telling that a file did not change while it was read
cost a GETATTR of its own, and telling its end an extra READ. Here a file is one LOOKUP
in its folder (whose handle is kept) and its READs: the LOOKUP's attributes are the file
before the read, the READ replies' attributes the file after it, and big files keep
several READs in flight on the one connection.

The calls are libnfs 4.0's ``rpc_nfs3_*_async`` on the ``rpc_context`` of a mounted
``nfs_context`` (``nfs_get_rpc_context``): the RPC layer is libnfs's own (its XDR, its
time-outs from ``nfs_set_timeout``, its reconnect), and this module only drives its event
loop (``rpc_get_fd``/``rpc_which_events``/``rpc_service``, as libnfs's synchronous calls do
inside C) and reads the replies. The GIL is released only while the loop waits in
``poll``: ``rpc_service`` is called for the events poll reported, so it does not wait,
and it runs the reply callback (a ctypes callback that copies what it needs out of the
reply, which libnfs frees after the callback) with the GIL held: a thread that gave the
GIL up for each step would wait for it behind the other copy threads each time. One
context is driven by one thread at a time, like every other libnfs call.

The structures are declared as in libnfs 4.0's nfsc/libnfs-raw-nfs.h (the soname guard
of ``nfs_source`` covers them too; tests/unit/test_nfs3_rpc_layout.py compares them with
the C header when a C compiler is there).
"""

from __future__ import annotations

import ctypes
import errno
import itertools
from typing import Any

# nfsstat3 codes whose errno differs from the code (RFC 1813 section 2.6); the others
# below 10000 are Linux errno values already.
_NFS3ERR_NOENT = 2
_NFS3ERR_STALE = 70
_NFS3_ERRNO = {
    70: errno.ESTALE,
    10001: errno.EBADF,  # BADHANDLE
    10002: errno.EINVAL,  # NOT_SYNC
    10003: errno.EINVAL,  # BAD_COOKIE
    10004: errno.EOPNOTSUPP,  # NOTSUPP
    10005: errno.EINVAL,  # TOOSMALL
    10006: errno.EIO,  # SERVERFAULT
    10007: errno.EINVAL,  # BADTYPE
    10008: errno.EAGAIN,  # JUKEBOX
}
_NFS3_NAMES = {
    1: "NFS3ERR_PERM",
    2: "NFS3ERR_NOENT",
    5: "NFS3ERR_IO",
    6: "NFS3ERR_NXIO",
    13: "NFS3ERR_ACCES",
    20: "NFS3ERR_NOTDIR",
    21: "NFS3ERR_ISDIR",
    22: "NFS3ERR_INVAL",
    63: "NFS3ERR_NAMETOOLONG",
    70: "NFS3ERR_STALE",
    10001: "NFS3ERR_BADHANDLE",
    10006: "NFS3ERR_SERVERFAULT",
    10008: "NFS3ERR_JUKEBOX",
}

# ftype3
NF3REG = 1
NF3DIR = 2
NF3LNK = 5

RPC_STATUS_SUCCESS = 0
RPC_STATUS_ERROR = 1
RPC_STATUS_CANCEL = 2
RPC_STATUS_TIMEOUT = 3

# How often the event loop calls rpc_service while it waits: that call also ends the
# RPCs whose time-out passed (libnfs-raw.h asks for one every 100 ms).
_POLL_MS = 100


class NfsTime3(ctypes.Structure):
    _fields_ = [("seconds", ctypes.c_uint32), ("nseconds", ctypes.c_uint32)]


class Specdata3(ctypes.Structure):
    _fields_ = [("specdata1", ctypes.c_uint32), ("specdata2", ctypes.c_uint32)]


class Fattr3(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("mode", ctypes.c_uint32),
        ("nlink", ctypes.c_uint32),
        ("uid", ctypes.c_uint32),
        ("gid", ctypes.c_uint32),
        ("size", ctypes.c_uint64),
        ("used", ctypes.c_uint64),
        ("rdev", Specdata3),
        ("fsid", ctypes.c_uint64),
        ("fileid", ctypes.c_uint64),
        ("atime", NfsTime3),
        ("mtime", NfsTime3),
        ("ctime", NfsTime3),
    ]


class PostOpAttr(ctypes.Structure):
    _fields_ = [("attributes_follow", ctypes.c_uint32), ("attributes", Fattr3)]


class NfsFh3(ctypes.Structure):
    """``nfs_fh3``; also the layout of libnfs's ``struct nfs_fh`` (int len, char *val)."""

    _fields_ = [("data_len", ctypes.c_uint32), ("data_val", ctypes.c_void_p)]


class _Opaque(ctypes.Structure):
    _fields_ = [("data_len", ctypes.c_uint32), ("data_val", ctypes.c_void_p)]


class Read3Args(ctypes.Structure):
    _fields_ = [("file", NfsFh3), ("offset", ctypes.c_uint64), ("count", ctypes.c_uint32)]


class Read3ResOk(ctypes.Structure):
    _fields_ = [
        ("file_attributes", PostOpAttr),
        ("count", ctypes.c_uint32),
        ("eof", ctypes.c_uint32),
        ("data", _Opaque),
    ]


class Read3Res(ctypes.Structure):
    # The union's failure arm (post_op_attr file_attributes) starts where resok does.
    _fields_ = [("status", ctypes.c_int), ("resok", Read3ResOk)]


class Lookup3Args(ctypes.Structure):
    _fields_ = [("dir", NfsFh3), ("name", ctypes.c_char_p)]


class Lookup3ResOk(ctypes.Structure):
    _fields_ = [
        ("object", NfsFh3),
        ("obj_attributes", PostOpAttr),
        ("dir_attributes", PostOpAttr),
    ]


class Lookup3Res(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int), ("resok", Lookup3ResOk)]


class Getattr3Args(ctypes.Structure):
    _fields_ = [("object", NfsFh3)]


class Getattr3Res(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int), ("obj_attributes", Fattr3)]


class PollFd(ctypes.Structure):
    """``struct pollfd`` (poll.h)."""

    _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short)]


RPC_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


class Attrs:
    """What this module keeps of an ``fattr3``."""

    __slots__ = ("type", "mode", "size", "mtime_ns", "ctime_ns")

    def __init__(self, fa: Fattr3) -> None:
        self.type = fa.type
        self.mode = fa.mode
        self.size = fa.size
        self.mtime_ns = fa.mtime.seconds * 1_000_000_000 + fa.mtime.nseconds
        self.ctime_ns = fa.ctime.seconds * 1_000_000_000 + fa.ctime.nseconds

    def key(self) -> tuple[int, int, int]:
        return (self.size, self.mtime_ns, self.ctime_ns)


def _attrs(post: PostOpAttr) -> Attrs | None:
    return Attrs(post.attributes) if post.attributes_follow else None


class RpcError(Exception):
    """A call that got no NFS answer (connection lost, timed out, cancelled, refused to
    queue): ``rc`` is ``-errno`` as libnfs's file API reports these."""

    def __init__(self, rc: int, message: str) -> None:
        self.rc = rc
        self.message = message
        super().__init__(message)


class Call:
    """One RPC in flight; ``done`` once its reply (or failure) was taken in."""

    __slots__ = (
        "what",
        "done",
        "status",
        "error",
        "attrs",
        "fh",
        "data",
        "count",
        "eof",
        "offset",
        "into",
    )

    def __init__(self, what: str, offset: int = 0, into: Any = None) -> None:
        self.what = what
        self.offset = offset
        # A READ's bytes are copied into ``into`` (a ctypes char array that outlives the
        # call) when given, else into ``data``; ``count`` says how many came.
        self.into = into
        self.count = 0
        self.done = False
        self.status = 0  # nfsstat3 (0: NFS3_OK)
        self.error: RpcError | None = None
        self.attrs: Attrs | None = None
        self.fh = b""
        self.data = b""
        self.eof = False

    def failure(self) -> tuple[int, str] | None:
        """``(-errno, message)`` of an NFS error status, None for NFS3_OK."""
        if not self.status:
            return None
        name = _NFS3_NAMES.get(self.status, f"NFS3 error {self.status}")
        code = _NFS3_ERRNO.get(self.status, self.status)
        return -code, f"NFS: {self.what} failed with {name}"

    @property
    def missing(self) -> bool:
        """NFS3ERR_NOENT or NFS3ERR_STALE: the name or the handle is gone."""
        return self.status in (_NFS3ERR_NOENT, _NFS3ERR_STALE)


# Calls in flight by key (the callback's private_data); the callback pops them.
_calls: dict[int, tuple[str, Call]] = {}
_keys = itertools.count(1)


def _on_reply(_rpc: Any, status: int, data: Any, private: Any) -> None:
    entry = _calls.pop(private or 0, None)
    if entry is None:  # nothing waits for it any more
        return
    kind, call = entry
    try:
        if status != RPC_STATUS_SUCCESS:
            if status == RPC_STATUS_TIMEOUT:
                call.error = RpcError(-errno.ETIMEDOUT, f"NFS: {call.what}: Command timed out")
            elif status == RPC_STATUS_CANCEL:
                call.error = RpcError(-errno.ECONNRESET, f"NFS: {call.what}: RPC cancelled")
            else:
                text = ctypes.string_at(data).decode("utf-8", "replace") if data else ""
                call.error = RpcError(
                    -errno.ECONNRESET, f"NFS: {call.what}: RPC error: {text or 'no reply'}"
                )
        elif kind == "read":
            res = Read3Res.from_address(data)
            call.status = res.status
            ok = res.resok
            call.attrs = _attrs(ok.file_attributes)
            if not res.status:
                n = min(ok.count, ok.data.data_len)
                if call.into is not None:
                    n = min(n, len(call.into))
                    ctypes.memmove(call.into, ok.data.data_val, n)
                elif n:
                    call.data = ctypes.string_at(ok.data.data_val, n)
                call.count = n
                call.eof = bool(ok.eof)
        elif kind == "lookup":
            res_l = Lookup3Res.from_address(data)
            call.status = res_l.status
            if not res_l.status:
                obj = res_l.resok.object
                call.fh = ctypes.string_at(obj.data_val, obj.data_len)
                call.attrs = _attrs(res_l.resok.obj_attributes)
        else:  # getattr
            res_g = Getattr3Res.from_address(data)
            call.status = res_g.status
            if not res_g.status:
                call.attrs = Attrs(res_g.obj_attributes)
    except BaseException as exc:  # noqa: BLE001 - a ctypes callback must not raise
        call.error = RpcError(-errno.EIO, f"NFS: {call.what}: bad reply ({exc!r})")
    finally:
        call.done = True


_CALLBACK = RPC_CB(_on_reply)  # module-wide: libnfs may call it until a context is destroyed


class RpcLib:
    """The libnfs RPC-layer functions and poll(2), bound with ctypes."""

    def __init__(self, path: str) -> None:
        c = ctypes
        vp = c.c_void_p
        quick = c.PyDLL(path)

        def bind(where: Any, name: str, restype: Any, *argtypes: Any) -> Any:
            fn = getattr(where, name)
            fn.restype = restype
            fn.argtypes = list(argtypes)
            return fn

        self.nfs_get_rpc_context = bind(quick, "nfs_get_rpc_context", vp, vp)
        self.nfs_get_fh = bind(quick, "nfs_get_fh", c.POINTER(NfsFh3), vp)
        self.nfs_get_readmax = bind(quick, "nfs_get_readmax", c.c_uint64, vp)
        self.rpc_get_fd = bind(quick, "rpc_get_fd", c.c_int, vp)
        self.rpc_which_events = bind(quick, "rpc_which_events", c.c_int, vp)
        self.rpc_get_error = bind(quick, "rpc_get_error", c.c_char_p, vp)
        # Only ever called for events poll reported: it reads and writes what the socket
        # takes without waiting, and runs the reply callbacks, so it keeps the GIL (a
        # callback would otherwise take it back, waiting behind the other threads).
        self.rpc_service = bind(quick, "rpc_service", c.c_int, vp, c.c_int)
        libc_wait = c.CDLL(None, use_errno=True)
        libc_quick = c.PyDLL(None, use_errno=True)
        pfd = c.POINTER(PollFd)
        # poll(2) twice: a look without waiting that keeps the GIL, and the wait itself,
        # which releases it (the one point of a call where other threads run).
        self.poll_now = bind(libc_quick, "poll", c.c_int, pfd, c.c_ulong, c.c_int)
        self.poll_wait = bind(libc_wait, "poll", c.c_int, pfd, c.c_ulong, c.c_int)
        # Queuing encodes the arguments into the request at once (they need not outlive
        # the call) and sends nothing: rpc_service writes it.
        self.read = bind(
            quick, "rpc_nfs3_read_async", c.c_int, vp, RPC_CB, c.POINTER(Read3Args), vp
        )
        self.lookup = bind(
            quick, "rpc_nfs3_lookup_async", c.c_int, vp, RPC_CB, c.POINTER(Lookup3Args), vp
        )
        self.getattr = bind(
            quick, "rpc_nfs3_getattr_async", c.c_int, vp, RPC_CB, c.POINTER(Getattr3Args), vp
        )

    def handle_of(self, nfsfh: int) -> bytes:
        """The file handle of a file (or folder) opened with ``nfs_open``."""
        fh = self.nfs_get_fh(nfsfh).contents
        return ctypes.string_at(fh.data_val, fh.data_len)


def _fh3(fh: bytes) -> tuple[NfsFh3, Any]:
    """An ``nfs_fh3`` over ``fh`` and the buffer that must stay alive while it is used."""
    buf = ctypes.create_string_buffer(fh, len(fh))
    return NfsFh3(len(fh), ctypes.cast(buf, ctypes.c_void_p)), buf


class Rpc:
    """The RPC context of one mounted libnfs context: queue calls, wait for replies."""

    def __init__(self, lib: RpcLib, nfs_ctx: int) -> None:
        self.lib = lib
        self.rpc = lib.nfs_get_rpc_context(nfs_ctx)
        self.readmax = int(lib.nfs_get_readmax(nfs_ctx))
        self._pfd = PollFd()

    def _queued(self, kind: str, call: Call, submit: Any, args: Any) -> Call:
        key = next(_keys)
        _calls[key] = (kind, call)
        if submit(self.rpc, _CALLBACK, ctypes.byref(args), key) != 0:
            _calls.pop(key, None)
            raise RpcError(
                -errno.ENOMEM, f"NFS: {call.what}: could not queue the RPC ({self.error()})"
            )
        return call

    def lookup(self, dir_fh: bytes, name: bytes, what: str) -> Call:
        fh, keep = _fh3(dir_fh)
        args = Lookup3Args(fh, name)
        call = self._queued("lookup", Call(what), self.lib.lookup, args)
        del keep
        return call

    def read(self, fh: bytes, offset: int, count: int, what: str, into: Any = None) -> Call:
        """A READ; its bytes land in ``into`` (a ctypes char array of at least ``count``)
        when given: a big reply copied into a buffer the reader keeps, instead of a new
        object per reply (fresh megabytes cost page faults)."""
        f, keep = _fh3(fh)
        args = Read3Args(f, offset, count)
        call = self._queued("read", Call(what, offset, into), self.lib.read, args)
        del keep
        return call

    def getattr(self, fh: bytes, what: str) -> Call:
        f, keep = _fh3(fh)
        call = self._queued("getattr", Call(what), self.lib.getattr, Getattr3Args(f))
        del keep
        return call

    def error(self) -> str:
        raw = self.lib.rpc_get_error(self.rpc)
        return raw.decode("utf-8", "replace") if raw else "unknown error"

    def wait(self, call: Call) -> Call:
        """Serve the connection until ``call`` is answered (other calls' replies that come
        first are taken in too). Raises ``RpcError`` when the call got no NFS answer."""
        lib = self.lib
        rpc = self.rpc
        pfd = self._pfd
        ref = ctypes.byref(pfd)
        while not call.done:
            fd = lib.rpc_get_fd(rpc)
            if fd < 0:
                raise RpcError(-errno.ENOTCONN, f"NFS: {call.what}: not connected")
            pfd.fd = fd
            pfd.events = lib.rpc_which_events(rpc)
            pfd.revents = 0
            if lib.poll_now(ref, 1, 0) == 0:
                lib.poll_wait(ref, 1, _POLL_MS)
            if lib.rpc_service(rpc, pfd.revents) < 0:
                raise RpcError(-errno.ECONNRESET, f"NFS: {call.what}: {self.error()}")
        if call.error is not None:
            raise call.error
        return call
