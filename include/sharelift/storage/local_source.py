"""A folder on this machine as a source: tests, demos, and shares already mounted here."""

from __future__ import annotations

import errno
import os
import stat as stat_mod
from collections.abc import Iterator

from sharelift.addresses import SourceAddress
from sharelift.errors import (
    AddressError,
    FileError,
    NotAFile,
    SourceFileNotFound,
    SourceFilePermissionDenied,
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
from sharelift.storage.beneath import Beneath, SymlinkNotFollowed


def _lstat(item: _Listed) -> os.stat_result | OSError:
    try:
        return item.stat(follow_symlinks=False)
    except OSError as exc:
        return exc


def _listed_kind(item: _Listed) -> EntryKind:
    """The kind the listing itself tells (``d_type``), for an entry that cannot be stat'ed."""
    try:
        if item.is_symlink():
            return EntryKind.SYMLINK
        if item.is_dir(follow_symlinks=False):
            return EntryKind.DIR
        if item.is_file(follow_symlinks=False):
            return EntryKind.FILE
    except OSError:
        pass
    return EntryKind.OTHER


def file_error(path: str, exc: OSError) -> FileError:
    """The per-file error for an ``OSError`` met while reading ``path``."""
    if isinstance(exc, SymlinkNotFollowed):
        return NotAFile(path, str(exc))
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return SourceFileNotFound(path, "source file not found (deleted or renamed during the run)")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return SourceFilePermissionDenied(path, "permission denied reading the source file")
    if exc.errno == errno.EISDIR:
        return NotAFile(path, "is a folder, not a file")
    return FileError(path, f"cannot read source file: {exc.strerror or exc}")


class LocalSource(Source):
    """Reads with plain ``os`` calls; ``os.scandir`` gives the kind without a stat per entry."""

    scheme = "file"
    # Local reads release the GIL; threads are enough.
    features = SourceFeatures(
        gil_bound=False, reports_symlinks=True, read_chunk_size=1024 * 1024, reads_ahead=True
    )

    def __init__(self, address: SourceAddress) -> None:
        self.address = address
        self.root = os.path.normpath(address.path)
        self._beneath = Beneath(self.root)

    def close(self) -> None:
        self._beneath.close()

    def __repr__(self) -> str:
        return f"LocalSource({self.address.name!r}, {self.root!r})"

    def clone(self) -> LocalSource:
        return LocalSource(self.address)

    def display_url(self, path: str = "") -> str:
        rel = check_relative_path(path)
        return f"file://{self.root.rstrip('/')}/{rel}" if rel else f"file://{self.root}"

    def check(self) -> None:
        try:
            st = os.stat(self.root)
        except FileNotFoundError:
            raise AddressError(self.address.name, f"folder {self.root} does not exist") from None
        except OSError as exc:
            raise AddressError(
                self.address.name, f"cannot open folder {self.root}: {exc.strerror}"
            ) from None
        if not stat_mod.S_ISDIR(st.st_mode):
            raise AddressError(self.address.name, f"{self.root} is not a folder")
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise AddressError(self.address.name, f"permission denied listing folder {self.root}")

    def walk(self, top: str = "") -> Iterator[Entry]:
        yield from self._walk_dir(check_relative_path(top), None)

    def _walk_dir(self, rel_dir: str, folder: Entry | None) -> Iterator[Entry]:
        """The folder's own entry (``folder``, yielded here once its listing is known),
        then what is in it. A folder that lists its names but refuses to let them be
        reached (read but no search permission) is an error naming the cause, and each
        name in it is an error entry of its own: it is seen, so it is reported."""
        try:
            items = self._listing(rel_dir)
        except OSError as exc:
            if rel_dir:
                yield Entry(
                    rel_dir,
                    EntryKind.DIR,
                    mtime_ns=folder.mtime_ns if folder else 0,
                    mode=folder.mode if folder else None,
                    error=f"cannot list folder: {exc.strerror}",
                )
                return
            raise AddressError(
                self.address.name, f"cannot list folder {self.root}: {exc.strerror}"
            ) from None
        # Search permission is the folder's: when the first name cannot be stat'ed for
        # want of it, none can.
        first = _lstat(items[0]) if items else None
        shut = isinstance(first, OSError) and first.errno in (errno.EACCES, errno.EPERM)
        if folder is not None:
            if shut:
                error = (
                    "cannot enter folder: permission denied (it can be listed but not "
                    "searched; each entry in it is listed as an error)"
                )
                folder = Entry(folder.path, folder.kind, 0, folder.mtime_ns, folder.mode, error)
            yield folder
        for k, item in enumerate(items):
            rel = f"{rel_dir}/{item.name}" if rel_dir else item.name
            st = first if k == 0 and first is not None else _lstat(item)
            if isinstance(st, OSError):
                if st.errno == errno.ENOENT:
                    continue  # vanished between listing and stat: it is simply not there
                if st.errno in (errno.EACCES, errno.EPERM):
                    where = repr(rel_dir) if rel_dir else "the top folder"
                    cause = f"permission denied (folder {where} can be listed but not searched)"
                else:
                    cause = f"cannot stat: {st.strerror}"
                yield Entry(rel, _listed_kind(item), error=f"cannot reach it: {cause}")
                continue
            kind = EntryKind.of_mode(st.st_mode)
            entry = Entry(
                rel,
                kind,
                size=st.st_size if kind is EntryKind.FILE else 0,
                mtime_ns=st.st_mtime_ns,
                mode=stat_mod.S_IMODE(st.st_mode),
            )
            if kind is EntryKind.DIR:
                yield from self._walk_dir(rel, entry)
            else:
                yield entry

    def _listing(self, rel_dir: str) -> list[_Listed]:
        """The folder's entries, sorted by name, listed through a descriptor opened beneath
        the root: a folder swapped for a symlink during the walk is an error (``OSError``),
        and what is behind the symlink is never listed. Each entry is stat'ed here, while
        the descriptor is open."""
        fd = self._beneath.listing(rel_dir)
        try:
            with os.scandir(fd) as it:
                return sorted((_Listed(item) for item in it), key=lambda d: d.name)
        finally:
            os.close(fd)

    def stat(self, path: str) -> Entry:
        try:
            st = self._beneath.lstat(check_relative_path(path))
        except OSError as exc:
            raise file_error(path, exc) from None
        kind = EntryKind.of_mode(st.st_mode)
        return Entry(
            check_relative_path(path),
            kind,
            size=st.st_size if kind is EntryKind.FILE else 0,
            mtime_ns=st.st_mtime_ns,
            mode=stat_mod.S_IMODE(st.st_mode),
        )

    def open(self, path: str) -> ReadStream:
        try:
            # Beneath the root, one name at a time: a file or any folder on its way that
            # was swapped for a symlink after the scan is refused, never followed.
            fd = self._beneath.open(check_relative_path(path), os.O_RDONLY)
        except OSError as exc:
            raise file_error(path, exc) from None
        try:
            st = os.fstat(fd)
            if not stat_mod.S_ISREG(st.st_mode):
                raise NotAFile(path, "is not a regular file")
        except BaseException:
            os.close(fd)
            raise
        stream = _LocalReadStream(os.fdopen(fd, "rb", buffering=0), path)
        stream.opened = _fingerprint(st)
        return stream

    def fingerprint(self, stream: ReadStream, path: str) -> Fingerprint:
        """``fstat`` of the open file: free, and immune to a rename of the path."""
        if not isinstance(stream, _LocalReadStream):
            return super().fingerprint(stream, path)
        try:
            return _fingerprint(os.fstat(stream.fileno()))
        except OSError as exc:
            raise file_error(path, exc) from None


def _fingerprint(st: os.stat_result) -> Fingerprint:
    return Fingerprint(st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class _Listed:
    """A ``DirEntry`` of a listing by descriptor, with its ``lstat`` taken (or its error
    kept) while the descriptor was open; answers the ``DirEntry`` calls the walk makes."""

    def __init__(self, item: os.DirEntry[str]) -> None:
        self.name = item.name
        self._stat: os.stat_result | None = None
        self._error: OSError | None = None
        try:
            self._stat = item.stat(follow_symlinks=False)
        except OSError as exc:
            self._error = exc
        # the listing's own d_type: what is known of an entry that cannot be stat'ed
        try:
            self._listed = (
                item.is_symlink(),
                item.is_dir(follow_symlinks=False),
                item.is_file(follow_symlinks=False),
            )
        except OSError:
            self._listed = (False, False, False)

    def stat(self, *, follow_symlinks: bool = False) -> os.stat_result:
        if self._stat is None:
            assert self._error is not None
            raise self._error
        return self._stat

    def is_symlink(self) -> bool:
        return stat_mod.S_ISLNK(self._stat.st_mode) if self._stat else self._listed[0]

    def is_dir(self, *, follow_symlinks: bool = False) -> bool:
        return stat_mod.S_ISDIR(self._stat.st_mode) if self._stat else self._listed[1]

    def is_file(self, *, follow_symlinks: bool = False) -> bool:
        return stat_mod.S_ISREG(self._stat.st_mode) if self._stat else self._listed[2]


class _LocalReadStream:
    """A raw file that turns read errors into per-file errors."""

    def __init__(self, f: object, path: str) -> None:
        self._f = f
        self._path = path
        self.opened: Fingerprint | None = None

    def fileno(self) -> int:
        return self._f.fileno()  # type: ignore[attr-defined,no-any-return]

    def read(self, size: int = -1, /) -> bytes:
        try:
            return self._f.read(size)  # type: ignore[attr-defined,no-any-return]
        except OSError as exc:
            raise file_error(self._path, exc) from None

    def readinto(self, buffer: bytearray | memoryview) -> int:
        try:
            return self._f.readinto(buffer)  # type: ignore[attr-defined,no-any-return]
        except OSError as exc:
            raise file_error(self._path, exc) from None

    def close(self) -> None:
        self._f.close()  # type: ignore[attr-defined]

    def __enter__(self) -> _LocalReadStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
