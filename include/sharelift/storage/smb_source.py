"""An SMB share as a source, over smbprotocol (pure-Python SMB 2/3).

Parallelism: processes, not threads. smbprotocol does everything in Python (building and
parsing every message, signing, the NTLM exchange) and holds the GIL while it does, so a
second thread in the same process adds no throughput (one stream is CPU-bound on
loopback). ``features.gil_bound`` tells the engine to run several worker
processes instead; each rebuilds its own ``SmbSource`` from the ``SourceAddress`` (which
pickles, ``Secret`` included), and ``SmbSource`` itself pickles as just its address.

What this module does below smbclient's high-level API, and why:

* Listing sends ``QUERY_DIRECTORY`` (FileIdFullDirectoryInformation) itself and parses the
  buffer with ``struct``: several times more entries/s than ``smbclient.scandir`` (which
  builds a Structure, four datetimes and an ``SMBRawIO`` per entry), and it keeps the server's
  100 ns FILETIME, which smbclient's datetimes round to microseconds. No stat per entry:
  size, times and attributes come with the listing. CREATE + QUERY + QUERY + CLOSE go as
  one compound, so a folder of up to ~1,000 entries costs one round trip.
* Files are read and folders listed on the fast path (``sharelift.storage.smb_fast``)
  when it can: smbprotocol sets up a connection of its own (negotiate, authenticate, tree
  connect) and the fast path then drives it with messages packed by ``struct``, signed or
  encrypted as the share requires, without smbprotocol's receive thread. What it does not
  handle (a DFS share, SMB 2.0.2, reparse points, DFS links, or
  ``SHARELIFT_SMB_FAST_READS=0``) is read and listed as below; the choice is logged at
  DEBUG, and ``read_path`` tells it. The paragraphs below describe smbprotocol's path,
  which the fast path mirrors (the listing's compound and its buffers, parsed by the same
  code; compound opens, prefetch, the before/after attributes of CREATE and CLOSE).
* ``open`` sends CREATE + READ (1 MiB) + CLOSE as one compound: a small file is one round
  trip instead of three. A larger file is opened again for the rest, read with four
  requests kept in flight ahead of the caller (faster than smbclient's reads), and
  each chunk is handed on as received, without a copy.
* ``prefetch`` sends the compounds of the next files (up to ``PREFETCH``) before their
  ``open``: the copy of one file overlaps the server's work on the next ones (the rest is
  smbprotocol's own CPU per file). Figures: ``bench/results/findings.md``.
* Files are opened with FILE_SHARE_READ|WRITE|DELETE (smbclient's default is an exclusive
  open, which fails on, or blocks, files that users of a live share have open).
* Every call passes ``port=`` and a per-instance ``connection_cache`` (never smbclient's
  global pool; ``SMBDirEntry.stat()`` would drop the port and dial 445).

Faults: a lost connection or session (server restarted, socket reset, the session or tree
deleted, a time-out) is transient: opens, stats and folder listings are tried again under
``storage.retrying``'s policy, each try after the first on new connections; a read that
fails half-way fails the file as transient, and the copy reads it again. The CREATE answer
of an open and the answer of the CLOSE in the same compound (asked with POSTQUERY_ATTRIB)
both carry size, LastWriteTime and ChangeTime: for a file read whole in that one round trip
they are the before and after the copy compares, at no extra cost.

Symlinks: Samba (4.17) hides them from SMB2 clients or resolves them on the server
(``follow symlinks``); it never reports them, so ``reports_symlinks`` is False. Windows
servers and newer Samba report links as reparse points (FILE_ATTRIBUTE_REPARSE_POINT with
a name-surrogate tag): those are yielded as ``SYMLINK`` and never entered or opened.
What Samba hides (symlinks, special files with ``hide special files``, names that are not
UTF-8) no walk can report: ``features.hidden_kinds`` names them and the run's summary
repeats it. A folder Samba may read but not search lists as empty; an empty listing is
checked with one lookup (``_unsearchable``), so such a folder is an error, not "empty".

Names SMB cannot carry (``? * : < > | " \\``, control characters): servers that map them
to the Unicode private range (Samba ``vfs_catia``/``fruit:encoding = native``, files macOS
clients wrote, "SFM") are mapped back, so such files are read under their real names. A
server that sends the raw character (Samba ``mangled names = no``, the test bed's default)
cannot open the file: it is yielded with ``error`` saying why, never silently dropped. A
server that mangles (Samba's default ``mangled names = illegal``) shows an 8.3 name such as
``WINC9O~A.TXT``; that is all SMB shows, so the file is copied under that name. Names that
are not valid UTF-8 on a Samba server's disk never reach any client (Samba hides them; with
vfs_catia 4.17 even ends the folder's listing there, see ``tests/servers/smb.py``).
"""

from __future__ import annotations

import collections
import functools
import logging
import os
import re
import socket
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any

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
    scrub,
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
from sharelift.storage.chunk_stream import ChunkStream
from sharelift.storage.smb_fast.channel import Channel, NotForFastPath, StatusError
from sharelift.storage.smb_fast.listing import list_folder
from sharelift.storage.smb_fast.reader import FastReader, FastStream

CHUNK = 1024 * 1024  # measured: 1 MiB reads are smbprotocol's sweet spot
DIR_QUERY_SIZE = 64 * 1024  # one credit per QUERY_DIRECTORY; larger buys little
READ_AHEAD = 4  # READ requests in flight per stream (4 beat 2 in one process)
PREFETCH = 8  # compound opens of announced files in flight on one connection
PREFETCH_CREDITS = 64  # credits a prefetch leaves for the reads of the file being copied
CONNECT_TIMEOUT = 15  # seconds, for the TCP connect and negotiate
# The fast read path (``sharelift.storage.smb_fast``) is on unless this is "0"/"off".
FAST_READS_ENV = "SHARELIFT_SMB_FAST_READS"
# What Samba (4.17, SMB2/3 without POSIX extensions) never shows a client: the run's
# summary names them, since no list can.
HIDDEN_KINDS = (
    "symlinks",
    "special files (fifos, sockets, devices)",
    "names that are not valid UTF-8",
)

# NTSTATUS values (MS-ERREF) this module tells apart.
STATUS_NO_SUCH_FILE = 0xC000000F
STATUS_END_OF_FILE = 0xC0000011
STATUS_ACCESS_DENIED = 0xC0000022
STATUS_OBJECT_NAME_INVALID = 0xC0000033
STATUS_OBJECT_NAME_NOT_FOUND = 0xC0000034
STATUS_OBJECT_PATH_INVALID = 0xC0000039
STATUS_OBJECT_PATH_NOT_FOUND = 0xC000003A
STATUS_OBJECT_PATH_SYNTAX_BAD = 0xC000003B
STATUS_SHARING_VIOLATION = 0xC0000043
STATUS_DELETE_PENDING = 0xC0000056
STATUS_FILE_LOCK_CONFLICT = 0xC0000054
STATUS_LOGON_FAILURE = 0xC000006D
STATUS_ACCOUNT_RESTRICTION = 0xC000006E
STATUS_INVALID_LOGON_HOURS = 0xC000006F
STATUS_INVALID_WORKSTATION = 0xC0000070
STATUS_PASSWORD_EXPIRED = 0xC0000071
STATUS_ACCOUNT_DISABLED = 0xC0000072
STATUS_FILE_IS_A_DIRECTORY = 0xC00000BA
STATUS_BAD_NETWORK_NAME = 0xC00000CC
STATUS_NOT_A_DIRECTORY = 0xC0000103
STATUS_FILE_DELETED = 0xC0000123
STATUS_ACCOUNT_LOCKED_OUT = 0xC0000234
STATUS_PASSWORD_MUST_CHANGE = 0xC0000224
STATUS_NOT_FOUND = 0xC0000225
STATUS_STOPPED_ON_SYMLINK = 0x8000002D
STATUS_PATH_NOT_COVERED = 0xC0000257  # a DFS link: smbclient follows the referral
# What the fast path leaves to smbprotocol's path, which resolves links and referrals.
_FOR_CLASSIC_PATH = frozenset({STATUS_STOPPED_ON_SYMLINK, STATUS_PATH_NOT_COVERED})
# The connection, session or tree went away: reconnect and try again.
_SESSION_LOST = frozenset(
    {
        0xC00000B5,  # STATUS_IO_TIMEOUT
        0xC00000C9,  # STATUS_NETWORK_NAME_DELETED
        0xC000009A,  # STATUS_INSUFFICIENT_RESOURCES
        0xC0000128,  # STATUS_FILE_CLOSED (a handle of a lost session)
        0xC000020C,  # STATUS_CONNECTION_DISCONNECTED
        0xC000020D,  # STATUS_CONNECTION_RESET
        0xC0000203,  # STATUS_USER_SESSION_DELETED
        0xC000035C,  # STATUS_NETWORK_SESSION_EXPIRED
        0xC00000B0,  # STATUS_PIPE_DISCONNECTED
    }
)

_NOT_FOUND = {
    STATUS_NO_SUCH_FILE,
    STATUS_OBJECT_NAME_NOT_FOUND,
    STATUS_OBJECT_PATH_NOT_FOUND,
    STATUS_DELETE_PENDING,
    STATUS_FILE_DELETED,
    STATUS_NOT_FOUND,
    STATUS_NOT_A_DIRECTORY,  # a parent folder became a file
}
_LOGON = {
    STATUS_LOGON_FAILURE: "logon failure: wrong username or password",
    STATUS_ACCOUNT_DISABLED: "logon failure: the account is disabled",
    STATUS_ACCOUNT_LOCKED_OUT: "logon failure: the account is locked out",
    STATUS_PASSWORD_EXPIRED: "logon failure: the password has expired",
    STATUS_PASSWORD_MUST_CHANGE: "logon failure: the password must be changed",
    STATUS_ACCOUNT_RESTRICTION: "logon failure: account restriction",
    STATUS_INVALID_LOGON_HOURS: "logon failure: not allowed at this time",
    STATUS_INVALID_WORKSTATION: "logon failure: not allowed from this workstation",
}

FILE_ATTRIBUTE_DIRECTORY = 0x10
FILE_ATTRIBUTE_REPARSE_POINT = 0x400
FILE_OPEN_REPARSE_POINT = 0x00200000
FILE_READ_ATTRIBUTES = 0x80
SYNCHRONIZE = 0x00100000
IO_REPARSE_TAG_NAME_SURROGATE = 0x20000000  # symlinks, junctions, WSL symlinks
_SPECIAL_REPARSE_TAGS = {
    0x80000014,  # IO_REPARSE_TAG_NFS (Samba's special files for POSIX clients)
    0x80000023,  # IO_REPARSE_TAG_AF_UNIX
    0x80000024,  # IO_REPARSE_TAG_LX_FIFO
    0x80000025,  # IO_REPARSE_TAG_LX_CHR
    0x80000026,  # IO_REPARSE_TAG_LX_BLK
}
# Looked up in a folder that lists as empty (``SmbSource._unsearchable``); never created.
_PROBE_NAME = ".sharelift-probe-not-a-file"
_EPOCH_AS_FILETIME = 116_444_736_000_000_000  # 1970-01-01 in 100 ns ticks since 1601

# FileIdFullDirectoryInformation (MS-FSCC 2.4.18): NextEntryOffset, [FileIndex, Creation,
# LastAccess], LastWriteTime, [ChangeTime], EndOfFile, [AllocationSize], FileAttributes,
# FileNameLength, EaSize (= the reparse tag for reparse points); the name starts at 80.
_DIR_ENTRY = struct.Struct("<I20xq8xq8xIII")
_DIR_NAME_OFFSET = 80
_FILE_ID_FULL_DIRECTORY_INFORMATION = 0x26
_SMB2_RESTART_SCANS = 0x01
_SMB2_RETURN_SINGLE_ENTRY = 0x02
_SMB2_HEADER = 64

# The macOS/SFM mapping of characters NTFS forbids into the private-use range (the table
# Samba's vfs_fruit feeds vfs_catia; tests/servers/smb.py uses the same).
_SFM = {c: 0xF000 + c for c in range(0x01, 0x20)} | {
    0x22: 0xF020,  # "
    0x2A: 0xF021,  # *
    0x3A: 0xF022,  # :
    0x3C: 0xF023,  # <
    0x3E: 0xF024,  # >
    0x3F: 0xF025,  # ?
    0x5C: 0xF026,  # backslash
    0x7C: 0xF027,  # |
}
_TO_WIRE = {k: v for k, v in _SFM.items()}
_FROM_WIRE = {v: k for k, v in _SFM.items()}
_UNCARRIABLE = re.compile(r'[\x00-\x1f"*:<>?\\|]')


log = logging.getLogger(__name__)
# smbprotocol logs a few INFO lines per file opened (create, read, close) and per
# session: at a million files that drowns the task log. Its lines pass only when this
# module's logger is at DEBUG, and then as DEBUG records. Filters belong to the logger a
# record is made on, hence one per smbprotocol/smbclient module logger.
_CHATTY_LOGGERS = (
    "smbprotocol.connection",
    "smbprotocol.session",
    "smbprotocol.tree",
    "smbprotocol.open",
    "smbprotocol.change_notify",
    "smbprotocol.transport",
    "smbclient._io",
    "smbclient._os",
    "smbclient._pool",
)


class _InfoAsDebug(logging.Filter):
    """Turns a library's INFO records into DEBUG ones, kept only when we log DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO:
            if not log.isEnabledFor(logging.DEBUG):
                return False
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


_INFO_AS_DEBUG = _InfoAsDebug()
for _name in _CHATTY_LOGGERS:
    logging.getLogger(_name).addFilter(_INFO_AS_DEBUG)


def filetime_to_ns(filetime: int) -> int:
    """A Windows FILETIME (100 ns ticks since 1601, UTC) as nanoseconds since the epoch."""
    return (filetime - _EPOCH_AS_FILETIME) * 100


def name_from_wire(name: str) -> str:
    return name.translate(_FROM_WIRE)


def name_to_wire(name: str) -> str:
    return name.translate(_TO_WIRE)


def _status(exc: BaseException) -> int | None:
    """The NTSTATUS carried by an smbprotocol (or fast path) exception, if any."""
    from smbprotocol.exceptions import SMBOSError, SMBResponseException

    if isinstance(exc, StatusError):
        return exc.ntstatus
    if isinstance(exc, SMBOSError):
        return int(exc.ntstatus)
    if isinstance(exc, SMBResponseException):
        return int(exc.status)
    return None


def _status_text(exc: BaseException) -> str:
    status = _status(exc)
    if status is None:
        return scrub(f"{type(exc).__name__}: {exc}")
    from smbprotocol.header import NtStatus

    for name, value in vars(NtStatus).items():
        if value == status and name.startswith("STATUS_"):
            return f"{name} (0x{status:08x})"
    return f"NTSTATUS 0x{status:08x}"


def _is_smb_error(exc: BaseException) -> bool:
    """True for the failures smbprotocol/smbclient raise (status, transport, protocol)."""
    from smbprotocol.exceptions import SMBException

    return isinstance(
        exc, SMBException | StatusError | OSError | ValueError | EOFError | struct.error
    )


def _transient(exc: BaseException) -> bool:
    """A failure of the connection or session, not of the file: worth a new connection."""
    from smbprotocol.exceptions import SMBConnectionClosed, SMBException

    status = _status(exc)
    if status is not None:
        return status in _SESSION_LOST
    if isinstance(exc, SMBConnectionClosed | ConnectionError | TimeoutError | EOFError):
        return True
    text = str(exc).lower()
    if isinstance(exc, ValueError):  # smbprotocol's transport: "Failed to connect to ..."
        return "failed to connect" in text
    if isinstance(exc, SMBException):
        return "connect" in text or "closed" in text or "timed out" in text
    return isinstance(exc, OSError)  # a socket error


def _attrs(data: bytes) -> Fingerprint | None:
    """Size, LastWriteTime and ChangeTime from a CREATE or CLOSE answer (same offsets)."""
    if len(data) < 60:
        return None
    _write, change, _alloc, size = struct.unpack_from("<qqqq", data, 24)
    if not (_write or change):
        return None  # a CLOSE without POSTQUERY_ATTRIB: the fields are zero
    return Fingerprint(size, filetime_to_ns(_write), filetime_to_ns(change))


def _kind(attributes: int, reparse_tag: int) -> EntryKind:
    if attributes & FILE_ATTRIBUTE_REPARSE_POINT:
        if reparse_tag & IO_REPARSE_TAG_NAME_SURROGATE:
            return EntryKind.SYMLINK
        if reparse_tag in _SPECIAL_REPARSE_TAGS:
            return EntryKind.OTHER
    return EntryKind.DIR if attributes & FILE_ATTRIBUTE_DIRECTORY else EntryKind.FILE


class _RawEntry:
    __slots__ = ("attributes", "mtime", "name", "size", "tag", "wire_name")

    def __init__(self, wire_name: str, mtime: int, size: int, attributes: int, tag: int) -> None:
        self.wire_name = wire_name
        self.name = name_from_wire(wire_name)
        self.mtime = mtime
        self.size = size
        self.attributes = attributes
        self.tag = tag


def _parse_dir_buffer(buf: bytes, out: list[_RawEntry]) -> None:
    pos = 0
    end = len(buf)
    unpack = _DIR_ENTRY.unpack_from
    while pos < end:
        nxt, mtime, size, attributes, name_len, ea = unpack(buf, pos)
        start = pos + _DIR_NAME_OFFSET
        wire = buf[start : start + name_len].decode("utf-16-le", "surrogatepass")
        if wire != "." and wire != "..":
            tag = ea if attributes & FILE_ATTRIBUTE_REPARSE_POINT else 0
            out.append(_RawEntry(wire, mtime, size, attributes, tag))
        if not nxt:
            break
        pos += nxt


def _name_problem(raw: _RawEntry) -> str | None:
    """Why a listed name cannot be read over SMB, or None when it can."""
    bad = _UNCARRIABLE.search(raw.wire_name)
    if bad:
        return (
            f"name contains {bad.group()!r}, which SMB cannot carry; the server sends it "
            "unmapped so the file cannot be opened (enable vfs_catia or fruit:encoding = "
            "native on the Samba share, or rename the file)"
        )
    try:
        raw.name.encode("utf-8")
    except UnicodeEncodeError:
        return "name is not valid Unicode (unpaired UTF-16 surrogate); rename the file"
    return None


# smbclient internals this module calls (see the module docstring for why): private, so
# any smbprotocol release may move them. The versions where they are as used here:
SMBPROTOCOL_SUPPORTED = ((1, 13), (2, 0))  # >= 1.13, < 2.0 (the tests run 1.17)
SMBCLIENT_INTERNALS = {
    "smbclient._pool": ("get_smb_tree", "register_session"),
    "smbclient._io": ("SMBDirectoryIO", "SMBFileIO", "SMBFileTransaction", "SMBRawIO"),
    # The fast read path (``sharelift.storage.smb_fast.channel``) sets up with these and
    # then retires the receive thread, which reads ``Connection.transport`` afresh for
    # every message, and drives ``Tcp``'s socket itself.
    "smbprotocol.connection": ("Connection", "SMB2Echo"),
    "smbprotocol.session": ("Session",),
    "smbprotocol.tree": ("TreeConnect",),
    "smbprotocol.transport": ("Tcp",),
}
# Methods of those classes the fast path relies on being there, as in 1.x.
SMBPROTOCOL_METHODS = {
    ("smbprotocol.connection", "Connection"): ("_process_message_thread", "send", "receive"),
    ("smbprotocol.transport", "Tcp"): ("connect", "close", "recv", "send"),
}
SMBPROTOCOL_REMEDY = (
    "install a supported smbprotocol (pip install 'smbprotocol>=1.13,<2'), or adapt "
    "sharelift.storage.smb_source to the new smbclient internals"
)


def fast_reads_enabled() -> bool:
    """False when ``SHARELIFT_SMB_FAST_READS`` turns the fast read path off."""
    value = os.environ.get(FAST_READS_ENV, "1").strip().lower()
    return value not in ("0", "off", "false", "no")


def installed_smbprotocol() -> str:
    import importlib.metadata

    return importlib.metadata.version("smbprotocol")


@functools.cache
def require_supported_smbprotocol() -> None:
    """Raise ``UnsupportedLibraryError`` unless smbprotocol is a supported version with the
    smbclient internals this module uses (checked once, before the first connection)."""
    import importlib

    (lo_major, lo_minor), (hi_major, hi_minor) = SMBPROTOCOL_SUPPORTED
    expected = f"smbprotocol >= {lo_major}.{lo_minor}, < {hi_major}.{hi_minor}"
    found = installed_smbprotocol()
    numbers = tuple(int(n) for n in re.findall(r"\d+", found)[:2])
    if not (lo_major, lo_minor) <= numbers < (hi_major, hi_minor):
        raise UnsupportedLibraryError(
            "smbprotocol", expected, f"smbprotocol {found}", SMBPROTOCOL_REMEDY
        )
    for module, names in SMBCLIENT_INTERNALS.items():
        try:
            missing = [n for n in names if not hasattr(importlib.import_module(module), n)]
        except ImportError:
            missing = [module]
        if missing:
            raise UnsupportedLibraryError(
                "smbprotocol",
                f"{expected} with {module}.{', '.join(names)}",
                f"smbprotocol {found} without {', '.join(missing)}",
                SMBPROTOCOL_REMEDY,
            )
    for (module, cls_name), methods in SMBPROTOCOL_METHODS.items():
        cls = getattr(importlib.import_module(module), cls_name)
        missing = [m for m in methods if not callable(getattr(cls, m, None))]
        if missing:
            raise UnsupportedLibraryError(
                "smbprotocol",
                f"{expected} with {module}.{cls_name}.{', '.join(methods)}",
                f"smbprotocol {found} without {', '.join(missing)}",
                SMBPROTOCOL_REMEDY,
            )


class SmbSource(Source):
    """Walk and read one SMB share (or a folder in it) with smbprotocol."""

    scheme = "smb"
    # threaded_clones=False: several sessions set up at once from one process (one client
    # GUID) to Samba 4.17 hung in Session.connect waiting for an answer that never came.
    features = SourceFeatures(
        gil_bound=True,
        reports_symlinks=False,
        read_chunk_size=CHUNK,
        threaded_clones=False,
        prefetch=PREFETCH,
        hidden_kinds=HIDDEN_KINDS,
        reads_ahead=True,
    )

    def __init__(self, address: SourceAddress) -> None:
        if address.protocol != "smb":
            raise ConfigError(
                "protocol", f"SmbSource needs an smb address (got {address.protocol!r})"
            )
        self.address = address
        self.port = address.port or 445
        self.root_parts = [p for p in re.split(r"[/\\]", address.path) if p not in ("", ".")]
        self._cache: dict[str, Any] = {}
        self._pid = os.getpid()
        # Compound opens sent ahead for ``prefetch``: (rel, raw, actions, requests), in order.
        self._ahead: collections.deque[tuple[str, Any, list[Any], list[Any]]] = collections.deque()
        # The fast read path's reader (its own connection), made on first use; or why
        # this source reads with smbprotocol instead.
        self._fast: FastReader | None = None
        self._fast_off: str | None = (
            None if fast_reads_enabled() else f"turned off ({FAST_READS_ENV}=0)"
        )
        self._fast_logged = False

    def __repr__(self) -> str:
        return f"SmbSource({self.address.name!r}, {self.display_url()!r})"

    def clone(self) -> SmbSource:
        return SmbSource(self.address)

    def __enter__(self) -> SmbSource:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        # A worker process gets the address only and opens its own connections.
        return (type(self), (self.address,))

    # -- connection plumbing -------------------------------------------------------------

    def _connections(self) -> dict[str, Any]:
        if self._pid != os.getpid():
            # Forked: the parent's connections (and their reader threads) are not ours.
            # Drop them without a logoff, which would write into the parent's socket.
            self._cache = {}
            self._ahead.clear()
            self._abandon_fast()
            self._pid = os.getpid()
        return self._cache

    def _username(self) -> str:
        a = self.address
        return f"{a.domain}\\{a.username}" if a.domain and a.username else a.username

    def _kwargs(self) -> dict[str, Any]:
        """smbclient keyword arguments, built per call so no object keeps them in view."""
        require_supported_smbprotocol()  # every connection is made with these
        return {
            "username": self._username() or None,
            "password": self.address.password.reveal() or None,
            "port": self.port,
            "connection_cache": self._connections(),
            "connection_timeout": CONNECT_TIMEOUT,
        }

    def _drop_connections(self) -> None:
        """Forget connections that failed: the next call connects (and logs on) again.
        No logoff is sent: the server has lost, or will time out, the session anyway."""
        self._ahead.clear()
        cache, self._cache = self._cache, {}
        if self._pid != os.getpid():
            self._abandon_fast()
            self._pid = os.getpid()
            return
        fast, self._fast = self._fast, None
        if fast is not None:
            fast.close()
        for connection in cache.values():
            try:
                connection.disconnect(close=False)
            except Exception:  # noqa: BLE001 - it is dead already
                pass

    def _retried(self, what: str, fn: Callable[[], Any]) -> Any:
        return retrying.call(fn, transient=_transient, recover=self._drop_connections, what=what)

    def fingerprint(self, stream: ReadStream, path: str) -> Fingerprint:
        """The CLOSE answer's for a file read in its first round trip (or, on the fast
        path, for the CLOSE that ends a larger file's read); else a fresh CREATE + CLOSE
        of the path (one round trip)."""
        if isinstance(stream, _SmbReadStream) and stream.closed_with is not None:
            return stream.closed_with
        if isinstance(stream, FastStream):
            try:
                after = stream.finish()
            except Exception as exc:
                if not _is_smb_error(exc):
                    raise
                after = None  # asked afresh below, with retries
            if after is not None:
                return after
        rel = check_relative_path(path)
        try:
            found = self._retried(f"stat of {path!r}", lambda: self._open_attrs(rel))
        except Exception as exc:
            if not _is_smb_error(exc):
                raise
            raise self._file_error(rel, exc) from None
        fp = _attrs(found["raw"]) if "raw" in found else None
        if fp is None:
            return Fingerprint(found["size"], filetime_to_ns(found["mtime"]))
        return fp

    def close(self) -> None:
        if self._pid != os.getpid():
            self._cache = {}
            self._ahead.clear()
            self._abandon_fast()
            self._pid = os.getpid()
            return
        fast, self._fast = self._fast, None
        if fast is not None:
            fast.close()
        self._drop_ahead(until=None)
        cache, self._cache = self._cache, {}
        if cache:
            import smbclient

            smbclient.reset_connection_cache(fail_on_error=False, connection_cache=cache)

    # -- the fast read path ----------------------------------------------------------------

    def _abandon_fast(self) -> None:
        fast, self._fast = self._fast, None
        if fast is not None:
            fast.abandon()

    def _fast_reader(self) -> FastReader | None:
        """The fast path's reader, connected on first use (and again after a failure);
        ``None`` where smbprotocol's path reads (turned off, or the server or share needs
        what the fast path does not do: the reason is logged once, at DEBUG)."""
        self._connections()  # a forked child forgets its parent's reader
        if self._fast_off is not None:
            return None
        if self._fast is not None and self._fast.alive:
            return self._fast
        self._fast = None
        kw = self._kwargs()
        try:
            channel = Channel.open(
                self.address.host,
                self.port,
                self.address.share,
                kw["username"],
                kw["password"],
                CONNECT_TIMEOUT,
            )
        except NotForFastPath as exc:
            self._fast_off = str(exc)
            log.debug("SMB fast read path off for %s: %s", self.display_url(), exc)
            return None
        if not self._fast_logged:
            self._fast_logged = True
            log.debug(
                "SMB fast read path on for %s (dialect 0x%04x, %s)",
                self.display_url(),
                channel.dialect,
                channel.protection,
            )
        self._fast = FastReader(channel, self._share_path, filetime_to_ns)
        return self._fast

    @property
    def read_path(self) -> str:
        """Which path reads files: "fast (<how messages are protected>)", or "smbprotocol
        (<why>)"; "undecided" before the first open or prefetch."""
        if self._fast_off is not None:
            return f"smbprotocol ({self._fast_off})"
        if self._fast is not None:
            return f"fast ({self._fast.channel.protection})"
        return "undecided"

    def _open_fast(self, rel: str) -> FastStream | None:
        """``rel`` opened on the fast path; ``None`` when smbprotocol's path must open it
        (fast path off, a reparse point, a DFS link)."""

        def first() -> tuple[FastReader, Any] | None:
            reader = self._fast_reader()
            if reader is None:
                return None
            return reader, reader.first(rel)

        try:
            got = self._retried(f"open of {rel!r}", first)
        except FileError:
            raise
        except Exception as exc:
            if not _is_smb_error(exc):
                raise
            if _status(exc) in _FOR_CLASSIC_PATH:
                return None
            raise self._file_error(rel, exc) from None
        if got is None or got[1] is None:
            return None
        reader, answer = got
        if answer.attributes & FILE_ATTRIBUTE_DIRECTORY:
            raise NotAFile(rel, "is a folder, not a file")
        return FastStream(reader, rel, answer, self._file_error)

    def _prefetch_fast(self, paths: Sequence[str]) -> bool:
        """Send the fast path's compounds for ``paths``; False when the fast path is off
        (smbprotocol's prefetch then runs). Never raises."""
        if self._fast_off is not None:
            return False
        reader = self._fast
        try:
            if reader is None:
                reader = self._fast_reader()  # the first use connects
                if reader is None:
                    return False
            if not reader.alive:
                return True  # the next open reconnects, and reports what is wrong
            for path in paths:
                rel = check_relative_path(path)
                if rel and not reader.prefetch(rel):
                    return True
        except Exception:  # noqa: BLE001 - a hint; open() reports real problems
            return True
        return True

    def _share_path(self, rel: str) -> str:
        """``rel`` as the path in the share the server knows (CREATE's name)."""
        parts = [*self.root_parts, *(rel.split("/") if rel else [])]
        return "\\".join(name_to_wire(p) for p in parts)

    # -- paths ---------------------------------------------------------------------------

    def _unc(self, rel: str) -> str:
        parts = [*self.root_parts, *(rel.split("/") if rel else [])]
        a = self.address
        return "\\\\" + "\\".join([a.host, a.share, *(name_to_wire(p) for p in parts)])

    def display_url(self, path: str = "") -> str:
        rel = check_relative_path(path)
        base = self.address.display_url()
        return f"{base}/{rel}" if rel else base

    # -- check ---------------------------------------------------------------------------

    def check(self) -> None:
        require_supported_smbprotocol()
        from smbclient._pool import get_smb_tree, register_session

        a = self.address
        name = a.name
        where = f"{a.host}:{self.port}"
        try:  # plain TCP first, so that "cannot reach" and "not SMB" are told apart
            socket.create_connection((a.host, self.port), timeout=CONNECT_TIMEOUT).close()
        except OSError as exc:
            raise AddressError(name, self._tcp_cause(exc, where)) from None
        kw = self._kwargs()
        try:
            register_session(
                a.host,
                username=kw["username"],
                password=kw["password"],
                port=self.port,
                connection_cache=kw["connection_cache"],
                connection_timeout=CONNECT_TIMEOUT,
            )
        except Exception as exc:  # noqa: BLE001 - every failure becomes one AddressError
            self.close()  # a half-made session must not be reused
            status = _status(exc)
            if status in _LOGON:
                cause = f"{_LOGON[status]} for user {a.username!r} on {where}"
            elif status is not None:
                cause = f"SMB login to {where} failed: {_status_text(exc)}"
            else:
                cause = (
                    f"{where} accepts TCP connections but did not complete SMB negotiation "
                    f"(not an SMB server, or SMB 2/3 disabled): {_status_text(exc)}"
                )
            raise AddressError(name, cause) from None

        share_unc = f"\\\\{a.host}\\{a.share}"
        try:
            get_smb_tree(share_unc, **self._kwargs())
        except Exception as exc:  # noqa: BLE001
            status = _status(exc)
            if status in (STATUS_BAD_NETWORK_NAME, STATUS_NOT_FOUND, STATUS_OBJECT_PATH_NOT_FOUND):
                cause = f"share {a.share!r} does not exist on {a.host} (bad network name)"
            elif status == STATUS_ACCESS_DENIED:
                cause = f"access denied to share {a.share!r} for user {a.username!r}"
            else:
                cause = f"cannot connect to share {a.share!r} on {where}: {_status_text(exc)}"
            raise AddressError(name, cause) from None

        folder = "/".join(self.root_parts)
        label = f"folder {folder!r} in share {a.share!r}" if folder else f"share {a.share!r}"
        try:
            self._list_dir_raw("", single=True)
        except Exception as exc:  # noqa: BLE001
            status = _status(exc)
            if status in _NOT_FOUND or status == STATUS_OBJECT_NAME_INVALID:
                cause = f"{label} does not exist"
                if status == STATUS_NOT_A_DIRECTORY:
                    cause = f"{label}: a part of the path is a file, not a folder"
            elif status == STATUS_ACCESS_DENIED:
                cause = f"access denied listing {label} for user {a.username!r}"
            else:
                cause = f"cannot list {label}: {_status_text(exc)}"
            raise AddressError(name, cause) from None

    def _tcp_cause(self, exc: OSError, where: str) -> str:
        if isinstance(exc, socket.gaierror):
            return f"host {self.address.host!r} not found (name resolution failed)"
        if isinstance(exc, ConnectionRefusedError):
            return f"connection refused by {where} (host reachable, nothing listening on that port)"
        if isinstance(exc, TimeoutError | socket.timeout):
            return f"host unreachable: no answer from {where} within {CONNECT_TIMEOUT} s"
        return f"host unreachable: cannot connect to {where} ({exc.strerror or exc})"

    # -- listing -------------------------------------------------------------------------

    def _list_dir_raw(
        self, rel: str, *, single: bool = False, pattern: str = "*"
    ) -> list[_RawEntry]:
        """List one folder.

        First try CREATE + QUERY + QUERY + CLOSE as one compound: when the second query
        answers STATUS_NO_MORE_FILES the folder is complete in one round trip (most
        folders). Otherwise (more than ~1,000 entries) list it again, keeping the handle
        open until the server says there is no more. Only STATUS_NO_MORE_FILES ends a
        listing; a short buffer never does. On the fast path when it can
        (``smb_fast.listing``, the same requests packed by hand), else through smbprotocol.
        """
        if single:
            return self._list_dir_once(rel, pattern, single=True)[0]
        buffers = self._list_dir_fast(rel, pattern)
        if buffers is not None:
            fast_entries: list[_RawEntry] = []
            for buf in buffers:
                _parse_dir_buffer(buf, fast_entries)
            return fast_entries
        entries, complete = self._list_dir_once(rel, pattern, single=False)
        if complete:
            return entries
        return self._list_dir_long(rel, pattern)

    def _list_dir_fast(self, rel: str, pattern: str) -> list[bytes] | None:
        """The folder's QUERY_DIRECTORY buffers listed on the fast path; ``None`` when
        smbprotocol's path must list it (fast path off, a DFS link or a symlink on the
        way, which smbclient resolves)."""
        reader = self._fast_reader()
        if reader is None:
            return None
        try:
            return list_folder(
                reader.channel,
                self._share_path(rel),
                pattern,
                _FILE_ID_FULL_DIRECTORY_INFORMATION,
            )
        except StatusError as exc:
            if exc.ntstatus in _FOR_CLASSIC_PATH:
                return None
            raise

    def _dir_io(self, rel: str) -> Any:
        from smbclient._io import SMBDirectoryIO

        return SMBDirectoryIO(self._unc(rel), mode="r", share_access="rwd", **self._kwargs())

    @staticmethod
    def _query_msg(fd: Any, pattern: str, flags: int) -> Any:
        msg, _ = fd.query_directory(
            pattern,
            _FILE_ID_FULL_DIRECTORY_INFORMATION,
            flags=flags,
            max_output=DIR_QUERY_SIZE,
            send=False,
        )
        return msg

    @staticmethod
    def _query_receiver(raw: Any) -> Callable[[Any], bytes | None]:
        from smbprotocol.exceptions import NoMoreFiles, NoSuchFile

        def receive(request: Any) -> bytes | None:
            try:
                # raw.fd, not a captured fd: a DFS referral may swap the Open mid-commit.
                response = raw.fd.connection.receive(request)
            except (NoMoreFiles, NoSuchFile):
                return None
            data = response["data"].get_value()
            offset, length = struct.unpack_from("<HI", data, 2)
            start = offset - _SMB2_HEADER
            return bytes(data[start : start + length])

        return receive

    def _list_dir_once(
        self, rel: str, pattern: str, *, single: bool
    ) -> tuple[list[_RawEntry], bool]:
        from smbclient._io import SMBFileTransaction

        raw = self._dir_io(rel)
        fd = raw.fd
        receive = self._query_receiver(raw)
        entries: list[_RawEntry] = []
        try:
            tx = SMBFileTransaction(raw)
            raw.open(transaction=tx)
            flags = _SMB2_RESTART_SCANS | (_SMB2_RETURN_SINGLE_ENTRY if single else 0)
            tx += (self._query_msg(fd, pattern, flags), receive)
            if not single:
                tx += (self._query_msg(fd, pattern, 0), receive)
            tx += _quiet_close(raw)
            tx.commit()
            buffers = (tx.results or ())[1:-1]
            complete = single or any(buf is None for buf in buffers)
            for buf in buffers:
                if buf is not None:
                    _parse_dir_buffer(buf, entries)
        finally:
            self._close_quietly(raw)
        return entries, complete

    def _list_dir_long(self, rel: str, pattern: str) -> list[_RawEntry]:
        from smbclient._io import SMBFileTransaction

        raw = self._dir_io(rel)
        receive = self._query_receiver(raw)
        entries: list[_RawEntry] = []
        try:
            tx = SMBFileTransaction(raw)
            raw.open(transaction=tx)
            tx += (self._query_msg(raw.fd, pattern, _SMB2_RESTART_SCANS), receive)
            tx.commit()
            buf = (tx.results or (None, None))[1]
            fd = raw.fd
            while buf is not None:
                _parse_dir_buffer(buf, entries)
                request = fd.connection.send(
                    self._query_msg(fd, pattern, 0),
                    sid=fd.tree_connect.session.session_id,
                    tid=fd.tree_connect.tree_connect_id,
                )
                buf = receive(request)
        finally:
            self._close_quietly(raw)
        return entries

    @staticmethod
    def _close_quietly(raw: Any) -> None:
        if not raw.closed:
            try:
                raw.close()
            except Exception:  # noqa: BLE001 - the listing (or its error) is what matters
                pass

    def _entry(self, rel: str, raw: _RawEntry) -> Entry:
        kind = _kind(raw.attributes, raw.tag)
        # A name with a lone surrogate stays as it is: the scan records it under its
        # escaped spelling (sharelift.engine.names), as for every backend.
        error = _name_problem(raw)
        return Entry(
            rel,
            kind,
            size=raw.size if kind is EntryKind.FILE else 0,
            mtime_ns=filetime_to_ns(raw.mtime),
            mode=None,
            error=error,
        )

    def _list_entries(self, rel_dir: str) -> list[Entry]:
        # A lost connection or session is transient here as for a read: reconnect and
        # list the folder again (else every folder after a server restart would be
        # reported unlistable).
        raws: list[_RawEntry] = self._retried(
            f"listing of {rel_dir or '/'!r}", lambda: self._list_dir_raw(rel_dir)
        )
        raws.sort(key=lambda r: r.name)
        prefix = f"{rel_dir}/" if rel_dir else ""
        return [self._entry(prefix + r.name, r) for r in raws]

    def walk(self, top: str = "") -> Iterator[Entry]:
        rel_top = check_relative_path(top)
        try:
            first = self._list_entries(rel_top)
        except Exception as exc:
            if not _is_smb_error(exc):
                raise
            if rel_top:
                yield Entry(rel_top, EntryKind.DIR, error=self._list_error(exc))
                return
            raise AddressError(
                self.address.name, f"cannot list {self.display_url()}: {self._list_error(exc)}"
            ) from None
        stack: list[Iterator[Entry]] = [iter(first)]
        while stack:
            entry = next(stack[-1], None)
            if entry is None:
                stack.pop()
                continue
            if entry.kind is not EntryKind.DIR or entry.error is not None:
                yield entry
                continue
            try:
                children = self._list_entries(entry.path)
                error = None if children else self._unsearchable(entry.path)
            except Exception as exc:
                if not _is_smb_error(exc):
                    raise
                if _transient(exc):
                    # The connection stayed lost for the whole retry time: every folder
                    # left would wait as long and fail alike, so the walk ends here (the
                    # scan fails with the cause; a later run lists everything again).
                    raise AddressError(
                        self.address.name,
                        f"lost the connection to {self.display_url()} while listing "
                        f"{entry.path!r}: {self._list_error(exc)}",
                    ) from None
                children, error = [], self._list_error(exc)
            yield Entry(entry.path, EntryKind.DIR, mtime_ns=entry.mtime_ns, error=error)
            stack.append(iter(children))

    def _unsearchable(self, rel: str) -> str | None:
        """Why an empty-looking folder is not empty, or None when it is.

        Samba lists a folder it may read but not search (mode 0644) as empty: it cannot
        stat the names, so it hides them. A name looked up in such a folder is refused
        (ACCESS_DENIED) where one in a really empty folder is not found; one CREATE of a
        name that does not exist tells the two apart.
        """
        try:
            self._open_info(f"{rel}/{_PROBE_NAME}")
        except Exception as exc:
            if not _is_smb_error(exc):
                raise
            if _status(exc) == STATUS_ACCESS_DENIED:
                return (
                    "cannot enter folder: permission denied (the server lists it as empty: "
                    "it may be read but not searched, so what is in it cannot be seen)"
                )
        return None

    @staticmethod
    def _list_error(exc: BaseException) -> str:
        status = _status(exc)
        if status == STATUS_ACCESS_DENIED:
            return "cannot list folder: permission denied"
        if status in _NOT_FOUND:
            return "cannot list folder: it no longer exists"
        return f"cannot list folder: {_status_text(exc)}"

    # -- stat ----------------------------------------------------------------------------

    def stat(self, path: str) -> Entry:
        rel = check_relative_path(path)
        try:
            info = self._retried(f"stat of {path!r}", lambda: self._open_info(rel))
        except Exception as exc:
            if not _is_smb_error(exc):
                raise
            if rel and _status(exc) == STATUS_ACCESS_DENIED:
                # Samba refuses even FILE_READ_ATTRIBUTES on a mode-000 file; the
                # parent's listing still shows it.
                listed = self._stat_from_parent(rel)
                if listed is not None:
                    return listed
            raise self._file_error(rel, exc) from None
        mtime, size, attributes = info
        tag = 0
        if attributes & FILE_ATTRIBUTE_REPARSE_POINT:
            tag = self._reparse_tag(rel)
        kind = _kind(attributes, tag)
        return Entry(
            rel, kind, size=size if kind is EntryKind.FILE else 0, mtime_ns=filetime_to_ns(mtime)
        )

    def _open_info(self, rel: str) -> tuple[int, int, int]:
        """(LastWriteTime FILETIME, EndOfFile, FileAttributes) from CREATE + CLOSE, one trip.

        The link itself is opened (FILE_OPEN_REPARSE_POINT) and only FILE_READ_ATTRIBUTES
        is asked for, which servers grant even when the data may not be read.
        """
        found = self._open_attrs(rel)
        return found["mtime"], found["size"], found["attributes"]

    def _open_attrs(self, rel: str) -> dict[str, Any]:
        """``_open_info``'s values by name, and the CREATE answer as ``raw``."""
        from smbclient._io import SMBFileTransaction, SMBRawIO
        from smbprotocol.open import CreateDisposition, ImpersonationLevel

        raw = SMBRawIO(
            self._unc(rel),
            mode="r",
            share_access="rwd",
            desired_access=FILE_READ_ATTRIBUTES | SYNCHRONIZE,
            create_options=FILE_OPEN_REPARSE_POINT,
            **self._kwargs(),
        )
        found: dict[str, Any] = {}
        msg, _ = raw.fd.create(
            ImpersonationLevel.Impersonation,
            FILE_READ_ATTRIBUTES | SYNCHRONIZE,
            0,
            0x07,  # share read, write, delete
            CreateDisposition.FILE_OPEN,
            FILE_OPEN_REPARSE_POINT,
            send=False,
        )

        def receive(request: Any) -> Any:
            result = raw.fd._create_response(request)
            data = request.response["data"].get_value()
            # SMB2 CREATE response: LastWriteTime at 24, EndOfFile at 48, attributes at 56.
            found["mtime"], found["size"], found["attributes"] = struct.unpack_from(
                "<q16xqI", data, 24
            )
            found["raw"] = bytes(data[:64])
            return result

        try:
            tx = SMBFileTransaction(raw)
            tx += (msg, receive)
            tx += _quiet_close(raw)
            tx.commit()
        finally:
            self._close_quietly(raw)
        fd = raw.fd
        if not found:  # a DFS retry used smbclient's own create: microsecond times only
            mtime = int(fd.last_write_time.timestamp() * 1_000_000) * 10 + _EPOCH_AS_FILETIME
            return {
                "mtime": mtime,
                "size": int(fd.end_of_file),
                "attributes": int(fd.file_attributes),
            }
        return found

    def _stat_from_parent(self, rel: str) -> Entry | None:
        parent, _, name = rel.rpartition("/")
        try:
            raws = self._list_dir_raw(parent, single=True, pattern=name_to_wire(name))
        except Exception as exc:
            if not _is_smb_error(exc):
                raise
            return None
        if not raws:
            return None
        entry = self._entry(rel, raws[0])
        return Entry(entry.path, entry.kind, size=entry.size, mtime_ns=entry.mtime_ns)

    def _reparse_tag(self, rel: str) -> int:
        """The reparse tag of ``rel``, read from its parent folder's listing."""
        parent, _, name = rel.rpartition("/")
        try:
            raws = self._list_dir_raw(parent, single=True, pattern=name_to_wire(name))
        except Exception as exc:
            if not _is_smb_error(exc):
                raise
            return IO_REPARSE_TAG_NAME_SURROGATE  # cannot tell: treat it as a link
        return raws[0].tag if raws else IO_REPARSE_TAG_NAME_SURROGATE

    # -- open ----------------------------------------------------------------------------

    def open(self, path: str) -> ReadStream:
        rel = check_relative_path(path)
        if not rel:
            raise NotAFile(rel, "is a folder, not a file")
        fast = self._open_fast(rel)
        if fast is not None:
            return fast

        def first_answer() -> tuple[bytes, int, int, Any, Any]:
            answer = self._prefetched(rel)
            if answer is None:
                answer = self._open_first(rel, reparse=True)
            attributes = answer[2]
            if attributes & FILE_ATTRIBUTE_REPARSE_POINT:
                kind = _kind(attributes, self._reparse_tag(rel))
                if kind is EntryKind.SYMLINK:
                    raise NotAFile(rel, "is a symlink; symlinks are not followed")
                if kind is EntryKind.OTHER:
                    raise NotAFile(rel, "is a special file (fifo, socket or device)")
                # Another kind of reparse point (dedup, cloud, compression): let the
                # server's filter produce the data.
                answer = self._open_first(rel, reparse=False)
            return answer

        try:
            first, size, attributes, mtime, raw = self._retried(f"open of {path!r}", first_answer)
        except FileError:
            raise
        except Exception as exc:
            if not _is_smb_error(exc):
                raise
            raise self._file_error(rel, exc) from None
        if attributes & FILE_ATTRIBUTE_DIRECTORY:
            raise NotAFile(rel, "is a folder, not a file")
        stream = _SmbReadStream(self, rel, first, size, mtime)
        stream.opened = getattr(raw, "sharelift_opened", None)
        if len(first) >= size:  # read whole before the CLOSE: its answer is the "after"
            stream.closed_with = getattr(raw, "sharelift_closed", None)
        return stream

    def _open_first(self, rel: str, *, reparse: bool) -> tuple[bytes, int, int, Any, Any]:
        """CREATE + READ(first chunk) + CLOSE as one compound request."""
        from smbclient._io import SMBFileTransaction

        raw, actions = self._first_actions(rel, reparse=reparse)
        try:
            tx = SMBFileTransaction(raw)
            for action in actions:
                tx += action
            tx.commit()  # smbclient's commit also follows DFS referrals
        finally:
            self._close_quietly(raw)
        fd = raw.fd
        data = tx.results[1] if tx.results else b""
        return data, int(fd.end_of_file), int(fd.file_attributes), fd.last_write_time, raw

    def _first_actions(self, rel: str, *, reparse: bool) -> tuple[Any, list[Any]]:
        """The (message, receiver) pairs of the CREATE + READ + CLOSE compound."""
        from smbclient._io import SMBFileIO, SMBFileTransaction
        from smbprotocol.exceptions import EndOfFile

        raw = SMBFileIO(
            self._unc(rel),
            mode="r",
            share_access="rwd",
            create_options=FILE_OPEN_REPARSE_POINT if reparse else 0,
            **self._kwargs(),
        )
        chunk = _chunk_for(raw.fd.connection, CHUNK)
        read_msg, _ = raw.fd.read(0, chunk, send=False)

        def receive(request: Any) -> bytes:
            try:
                return bytes(raw.fd._read_response(request))
            except EndOfFile:
                return b""

        tx = SMBFileTransaction(raw)
        raw.open(transaction=tx)  # appends the CREATE to tx
        (create_msg, create_receive), *rest = tx._actions

        def receive_create(request: Any) -> Any:
            result = create_receive(request)
            raw.sharelift_opened = _attrs(request.response["data"].get_value())
            return result

        close_msg, _ = raw.fd.close(get_attributes=True, send=False)

        def receive_close(request: Any) -> None:
            from smbprotocol.exceptions import SMBResponseException

            try:
                raw.fd._close_response(request)
            except SMBResponseException:
                return
            raw.sharelift_closed = _attrs(request.response["data"].get_value())

        return raw, [
            (create_msg, receive_create),
            *rest,
            (read_msg, receive),
            (close_msg, receive_close),
        ]

    # -- prefetch: several files' compound opens in flight -------------------------------

    def prefetch(self, paths: Sequence[str]) -> None:
        """Send the CREATE + READ + CLOSE compounds of files about to be opened.

        One file costs one round trip to the server, and smbprotocol holds the GIL while it
        builds and parses messages, so threads add nothing; keeping a few compounds in
        flight on the one connection overlaps the server's work with ours. Best effort: a
        hint that cannot be sent (credits short, a connection problem) is dropped, and
        ``open`` then does the round trip itself, reporting any error there.
        """
        if self._prefetch_fast(paths):
            return
        for path in paths:
            if len(self._ahead) >= PREFETCH:
                return
            try:
                rel = check_relative_path(path)
                if not rel:
                    continue
                raw, actions = self._first_actions(rel, reparse=True)
                conn = raw.fd.connection
                window = conn.sequence_window
                if window["high"] - window["low"] < PREFETCH_CREDITS:
                    return  # the reads would shrink to the credits left: not worth it
                tree = raw.fd.tree_connect
                requests = conn.send_compound(
                    [a[0] for a in actions],
                    tree.session.session_id,
                    tree.tree_connect_id,
                    related=True,
                )
            except Exception:  # noqa: BLE001 - a hint; open() reports real problems
                return
            self._ahead.append((rel, raw, actions, requests))

    def _drop_ahead(self, until: str | None) -> Any:
        """Take the answers of prefetched compounds off the connection up to ``until``
        (every reply must be received, or it lingers); returns ``until``'s entry."""
        while self._ahead:
            entry = self._ahead.popleft()
            if until is not None and entry[0] == until:
                return entry
            self._receive_ahead(entry, quiet=True)
        return None

    def _prefetched(self, rel: str) -> tuple[bytes, int, int, Any, Any] | None:
        if not self._ahead or rel not in {e[0] for e in self._ahead}:
            return None
        entry = self._drop_ahead(until=rel)
        return self._receive_ahead(entry, quiet=False)

    def _receive_ahead(
        self, entry: tuple[str, Any, list[Any], list[Any]], *, quiet: bool
    ) -> tuple[bytes, int, int, Any, Any] | None:
        """The receiving half of ``SMBFileTransaction.commit`` (which sends and waits at
        once). A file behind a DFS referral falls back to a fresh ``_open_first``."""
        from smbprotocol.exceptions import SMBOSError, SMBResponseException

        rel, raw, actions, requests = entry
        results: list[Any] = []
        failure: BaseException | None = None
        for (_, receive), request in zip(actions, requests, strict=True):
            try:
                results.append(receive(request))
            except SMBResponseException as exc:
                results.append(None)
                failure = failure or SMBOSError(exc.status, raw.name)
            except Exception as exc:  # noqa: BLE001 - receive every reply before raising
                results.append(None)
                failure = failure or exc
        self._close_quietly(raw)
        if quiet:
            return None
        if failure is not None:
            if _status(failure) in _NOT_FOUND:
                return self._open_first(rel, reparse=True)  # DFS, or a rename since
            raise failure
        fd = raw.fd
        return (
            results[1] or b"",
            int(fd.end_of_file),
            int(fd.file_attributes),
            fd.last_write_time,
            raw,
        )

    def _reopen(self, rel: str) -> Any:
        from smbclient._io import SMBFileIO

        raw = SMBFileIO(self._unc(rel), mode="r", share_access="rwd", **self._kwargs())
        raw.open()
        return raw

    def _file_error(self, rel: str, exc: BaseException) -> FileError:
        status = _status(exc)
        if status in _NOT_FOUND:
            return SourceFileNotFound(
                rel, "source file not found (deleted or renamed during the run)"
            )
        if status == STATUS_ACCESS_DENIED:
            return SourceFilePermissionDenied(rel, "permission denied reading the source file")
        if status in (STATUS_FILE_IS_A_DIRECTORY,):
            return NotAFile(rel, "is a folder, not a file")
        if status == STATUS_STOPPED_ON_SYMLINK:
            return NotAFile(rel, "is a symlink; symlinks are not followed")
        if status == STATUS_SHARING_VIOLATION:
            return FileError(
                rel, "the file is open exclusively by another program (sharing violation)"
            )
        if status == STATUS_FILE_LOCK_CONFLICT:
            return FileError(rel, "the file is locked by another program")
        if status in (
            STATUS_OBJECT_NAME_INVALID,
            STATUS_OBJECT_PATH_INVALID,
            STATUS_OBJECT_PATH_SYNTAX_BAD,
        ):
            return FileError(
                rel, "the server rejects this name over SMB (characters SMB cannot carry)"
            )
        if _transient(exc):
            return FileError(
                rel, f"lost the connection to the SMB server: {_status_text(exc)}", transient=True
            )
        return FileError(rel, f"cannot read source file over SMB: {_status_text(exc)}")


def _quiet_close(raw: Any) -> tuple[Any, Callable[[Any], None]]:
    """A CLOSE for the end of a compound whose failure is not an error of the operation.

    Windows fails a related CLOSE that follows a failed request (a query answering
    NO_MORE_FILES, a read at END_OF_FILE); the handle then stays open and the caller's
    ``_close_quietly`` closes it on its own.
    """
    from smbprotocol.exceptions import SMBResponseException

    msg, _ = raw.fd.close(send=False)

    def receive(request: Any) -> None:
        try:
            raw.fd._close_response(request)  # the current Open (DFS may have swapped it)
        except SMBResponseException:
            pass

    return msg, receive


def _chunk_for(connection: Any, wanted: int) -> int:
    """The largest read up to ``wanted`` that the negotiated size and our credits allow."""
    window = connection.sequence_window
    credits = max(1, window["high"] - window["low"])
    return max(1, min(wanted, connection.max_read_size, credits * 65536))


class _SmbReadStream(ChunkStream):
    """Bytes of one file: the first chunk came with the open; the rest is read ahead."""

    def __init__(self, source: SmbSource, rel: str, first: bytes, size: int, mtime: Any) -> None:
        super().__init__(first, size)
        self._source = source
        self._rel = rel
        self._mtime = mtime
        self._raw: Any = None
        self.opened: Fingerprint | None = None  # from the CREATE answer
        self.closed_with: Fingerprint | None = None  # from the CLOSE answer (one-trip files)

    def _fill(self) -> None:
        try:
            if self._raw is None:
                self._open_rest()
            self._send_ahead()
            if not self._inflight:
                return
            request, recv, wanted = self._inflight.popleft()
            data = self._receive(request, recv)
            if len(data) < wanted:
                self._eof = True  # shrank under us: stop here
            self._take(data)
            self._send_ahead()
        except FileError:
            self.close()
            raise
        except Exception as exc:
            if not _is_smb_error(exc):
                raise
            self.close()
            raise self._source._file_error(self._rel, exc) from None

    def _open_rest(self) -> None:
        raw = self._source._reopen(self._rel)
        self._raw = raw
        fd = raw.fd
        if fd.end_of_file != self._size or fd.last_write_time != self._mtime:
            raise SourceFileChanged(self._rel, "the file changed while it was being read")

    def _send_ahead(self) -> None:
        fd = self._raw.fd
        conn = fd.connection
        while not self._eof and len(self._inflight) < READ_AHEAD and self._next < self._size:
            length = _chunk_for(conn, min(CHUNK, self._size - self._next))
            msg, recv = fd.read(self._next, length, send=False)
            request = conn.send(
                msg,
                sid=fd.tree_connect.session.session_id,
                tid=fd.tree_connect.tree_connect_id,
                credit_request=(CHUNK // 65536) * (READ_AHEAD + 1),
            )
            self._inflight.append((request, recv, length))
            self._next += length

    @staticmethod
    def _receive(request: Any, recv: Callable[[Any], bytes]) -> bytes:
        from smbprotocol.exceptions import EndOfFile

        try:
            return bytes(recv(request))
        except EndOfFile:
            return b""

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._drop_buffer()
        while self._inflight:  # every request sent must be received, or the reply lingers
            request, recv, _ = self._inflight.popleft()
            try:
                self._receive(request, recv)
            except Exception:  # noqa: BLE001 - closing: the data is not wanted
                pass
        raw, self._raw = self._raw, None
        if raw is not None and not raw.closed:
            try:
                raw.close()
            except Exception:  # noqa: BLE001
                pass
