"""Opening paths beneath a folder one name at a time, never following a symlink.

``os.open(root + "/" + path, O_NOFOLLOW)`` refuses a symlink only as the last name: a
folder of the path replaced by a symlink after the scan is followed, and the file behind
it is read (or written) outside the folder. Here each folder is opened relative to its
parent's descriptor (``dir_fd``) with ``O_NOFOLLOW | O_DIRECTORY``, so a symlink anywhere
in the path is an error naming it (``SymlinkNotFollowed``), never a way out. The root
itself is the operator's choice and is opened as configured (it may be a symlink).

Why not ``openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)``: it would do the same in one
call, but Python has no binding (ctypes and a syscall number per architecture), it needs
Linux 5.6+ and some container seccomp profiles refuse it, so this walk would be needed as a
fallback anyway; and its ``ELOOP`` does not say which name was the symlink.

Cost: each thread keeps the descriptors of the folder it used last and of its parents, so
the next file in the same folder (the copier goes folder by folder) costs one ``openat``,
as a plain ``open`` did, and a sibling folder one more. A kept descriptor goes on naming
the same directory even if that directory is renamed meanwhile: the next file then goes to
(or comes from) that directory, wherever it was moved. Moving it needs write access where
it goes, so this never leads anywhere the one who moved it could not write already; a
symlink put in its place is never followed.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
import threading
import weakref
from collections.abc import Sequence

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# O_PATH: a folder that may be searched but not read can still be passed through.
_FOLDER_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
_LISTING_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC


class SymlinkNotFollowed(OSError):
    """A name on the way is a symbolic link (now); ``where`` is its path below the root."""

    def __init__(self, where: str) -> None:
        super().__init__(errno.ELOOP, f"{where} is a symbolic link now; not followed")
        self.where = where

    def __str__(self) -> str:
        return str(self.strerror)


class _Chain:
    """One thread's open folders: the root, then each folder of the last path used.
    Closed when its thread ends (the thread's locals go, and with them the last strong
    reference), so pools of short-lived threads do not pile up descriptors."""

    def __init__(self) -> None:
        self.root = -1
        self.names: list[str] = []
        self.fds: list[int] = []

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass

    def trim(self, keep: int) -> None:
        while len(self.fds) > keep:
            self.names.pop()
            os.close(self.fds.pop())

    def close(self) -> None:
        self.trim(0)
        if self.root >= 0:
            os.close(self.root)
            self.root = -1


class Beneath:
    """Descriptors of folders below ``root`` (see the module docstring). Thread-safe: each
    thread has its own chain of open folders."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._local = threading.local()
        self._chains: weakref.WeakSet[_Chain] = weakref.WeakSet()
        self._lock = threading.Lock()

    @staticmethod
    def split(rel: str) -> list[str]:
        """The names of a '/'-separated path below the root; never '', '.' or '..'."""
        names = rel.split("/") if rel else []
        for name in names:
            if name in ("", ".", "..") or "\x00" in name:
                raise ValueError(f"not a path below the folder: {rel!r}")
        return names

    def _chain(self, create: bool = False) -> _Chain:
        chain: _Chain | None = getattr(self._local, "chain", None)
        if chain is None:
            chain = _Chain()
            with self._lock:
                self._chains.add(chain)
            self._local.chain = chain
        if chain.root < 0:
            if create:
                os.makedirs(self.root, exist_ok=True)  # the configured root: trusted
            chain.root = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
        return chain

    def folder(self, names: Sequence[str], *, create: bool = False) -> int:
        """The descriptor of the folder ``names`` below the root (owned by the cache: do
        not close it). ``create``: make missing folders. Raises ``SymlinkNotFollowed``,
        or the ``OSError`` of the name that could not be opened."""
        chain = self._chain(create)
        same = 0
        limit = min(len(chain.names), len(names))
        while same < limit and chain.names[same] == names[same]:
            same += 1
        chain.trim(same)
        parent = chain.fds[-1] if chain.fds else chain.root
        for i in range(same, len(names)):
            fd = self._open_folder(parent, names, i, create)
            chain.names.append(names[i])
            chain.fds.append(fd)
            parent = fd
        return parent

    def _open_folder(self, parent: int, names: Sequence[str], i: int, create: bool) -> int:
        name = names[i]
        try:
            return os.open(name, _FOLDER_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise
        except OSError as exc:
            raise _classified(exc, parent, names, i) from None
        try:
            os.mkdir(name, 0o755, dir_fd=parent)
        except FileExistsError:
            pass  # another thread made it meanwhile
        try:
            return os.open(name, _FOLDER_FLAGS, dir_fd=parent)
        except OSError as exc:
            raise _classified(exc, parent, names, i) from None

    def parent(self, rel: str, *, create: bool = False) -> tuple[int, str]:
        """(descriptor of the folder holding ``rel``, the last name of ``rel``)."""
        names = self.split(rel)
        if not names:
            raise ValueError("the root folder itself has no parent here")
        return self.folder(names[:-1], create=create), names[-1]

    def open(self, rel: str, flags: int, mode: int = 0o644, *, create: bool = False) -> int:
        """``os.open`` of ``rel`` below the root, the last name with ``O_NOFOLLOW`` too."""
        folder, name = self.parent(rel, create=create)
        try:
            return os.open(name, flags | os.O_NOFOLLOW | _CLOEXEC, mode, dir_fd=folder)
        except OSError as exc:
            raise _classified(exc, folder, self.split(rel), -1) from None

    def lstat(self, rel: str) -> os.stat_result:
        names = self.split(rel)
        if not names:
            return os.stat(self.root)
        folder = self.folder(names[:-1])
        return os.stat(names[-1], dir_fd=folder, follow_symlinks=False)

    def listing(self, rel: str) -> int:
        """A new readable descriptor of the folder ``rel`` (for ``os.scandir``); the caller
        closes it."""
        names = self.split(rel)
        if not names:
            return os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
        parent = self.folder(names[:-1])
        try:
            return os.open(names[-1], _LISTING_FLAGS, dir_fd=parent)
        except OSError as exc:
            raise _classified(exc, parent, names, -1) from None

    def close(self) -> None:
        """Close every thread's descriptors. Safe to call twice; the next use reopens."""
        with self._lock:
            chains, self._chains = list(self._chains), weakref.WeakSet()
        for chain in chains:
            chain.close()
        self._local = threading.local()


def _classified(exc: OSError, parent: int, names: Sequence[str], i: int) -> OSError:
    """``exc``, or ``SymlinkNotFollowed`` when the name it came from is a symlink
    (``O_NOFOLLOW`` answers ``ELOOP`` for a file, ``ENOTDIR`` with ``O_DIRECTORY``)."""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        try:
            st = os.stat(names[i], dir_fd=parent, follow_symlinks=False)
        except OSError:
            return exc
        if stat_mod.S_ISLNK(st.st_mode):
            upto = len(names) if i == -1 else i + 1
            return SymlinkNotFollowed("/".join(names[:upto]))
    return exc
