"""What the test-bed servers load from the machine, and the Debian package that brings each.

A piece that is missing does not always stop a daemon from starting: smbd without a VFS
module it is configured with listens and then refuses every connection to the share, so the
start would only end in a time-out. Each server therefore checks its prerequisites before it
launches anything and fails at once with an error that names the Debian package, e.g.::

    smbd cannot load vfs module catia: /usr/lib/x86_64-linux-gnu/samba/vfs/catia.so is
    missing; install the Debian package samba-vfs-modules (scripts/install.sh)

Every package named here is in ``scripts/install.sh`` (a unit test holds the two together).
Packages reached only through a *Recommends* never arrive there (``--no-install-recommends``),
so each entry names the package that ships the file itself.
"""

from __future__ import annotations

import glob
import os
import platform
import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from tests.servers import TestbedError

INSTALL_SCRIPT = "scripts/install.sh"
# Where Debian keeps the machine's libraries and their modules: /usr/lib/<multiarch triplet>.
LIB_DIR = "/usr/lib/" + (
    getattr(sys.implementation, "_multiarch", "") or f"{platform.machine()}-linux-gnu"
)
# Searched after PATH for programs (a non-root PATH often lacks the sbin folders).
_PROGRAM_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")


class MissingPrerequisite(TestbedError):
    """A program, module or library a test-bed server needs is not installed."""

    def __init__(self, message: str, package: str) -> None:
        super().__init__(message)
        self.package = package


@dataclass(frozen=True)
class Prerequisite:
    """One file a server needs: where it may be, and which Debian package ships it.

    ``program`` is looked up on PATH and then in the system's program folders; ``paths``
    are checked in order (glob patterns allowed) and the first is the one an error names.
    """

    need: str  # what fails without it, e.g. "smbd cannot load vfs module catia"
    package: str
    program: str = ""
    paths: tuple[str, ...] = ()

    def locate(self) -> str | None:
        """The installed file, or None."""
        if self.program:
            found = shutil.which(self.program)
            if found:
                return found
            for folder in _PROGRAM_DIRS:
                candidate = os.path.join(folder, self.program)
                if os.access(candidate, os.X_OK):
                    return candidate
        for pattern in self.paths:
            matches = glob.glob(pattern)
            if matches:
                return max(matches, key=_version_order)  # /usr/lib/postgresql/15 over 9.6
        return None

    def missing_message(self) -> str:
        if self.program:
            where = f"no {self.program} on PATH or in {', '.join(_PROGRAM_DIRS)}"
        else:
            where = f"{self.paths[0]} is missing"
        return f"{self.need}: {where}; install the Debian package {self.package} ({INSTALL_SCRIPT})"


def _version_order(path: str) -> list[tuple[int, str]]:
    """Sort key comparing the digit runs of a path as numbers."""
    return [(int(part), "") if part.isdigit() else (-1, part) for part in re.split(r"(\d+)", path)]


def _program(program: str, package: str, need: str = "") -> Prerequisite:
    return Prerequisite(need or f"{program} is not installed", package, program=program)


def _postgres(program: str) -> Prerequisite:
    # Debian's server binaries live in a versioned folder, off PATH.
    return Prerequisite(
        f"PostgreSQL's {program} is not installed",
        "postgresql",
        paths=(f"/usr/lib/postgresql/*/bin/{program}",),
    )


def _samba_vfs(module: str) -> Prerequisite:
    return Prerequisite(
        f"smbd cannot load vfs module {module}",
        "samba-vfs-modules",
        paths=(f"{LIB_DIR}/samba/vfs/{module}.so", f"/usr/lib*/samba/vfs/{module}.so"),
    )


PREREQUISITES: dict[str, Prerequisite] = {
    # NfsServer
    "ganesha.nfsd": _program("ganesha.nfsd", "nfs-ganesha", "nfs-ganesha is not installed"),
    "fsal-vfs": Prerequisite(
        "nfs-ganesha cannot export a local folder without its VFS FSAL",
        "nfs-ganesha-vfs",
        paths=(
            f"{LIB_DIR}/ganesha/libfsalvfs.so",
            "/usr/lib*/ganesha/libfsalvfs.so",
            "/usr/lib/*/ganesha/libfsalvfs.so",
        ),
    ),
    "rpcbind": _program(
        "rpcbind", "rpcbind", "rpcbind is not installed (ganesha registers NFSv3 with it)"
    ),
    "setpriv": _program("setpriv", "util-linux"),
    # SmbServer
    "smbd": _program("smbd", "samba", "Samba's smbd is not installed"),
    "smbpasswd": _program("smbpasswd", "samba-common-bin"),
    "useradd": _program("useradd", "passwd"),
    "vfs:catia": _samba_vfs("catia"),
    # PostgresServer
    "initdb": _postgres("initdb"),
    "pg_ctl": _postgres("pg_ctl"),
    "createdb": _postgres("createdb"),
    "runuser": _program("runuser", "util-linux"),
    # the benchmark's reference tool
    "rclone": _program("rclone", "rclone"),
}


def require(key: str, table: Mapping[str, Prerequisite] | None = None) -> str:
    """The path of prerequisite ``key``; ``MissingPrerequisite`` naming its package if absent."""
    entry = (PREREQUISITES if table is None else table)[key]
    found = entry.locate()
    if found is None:
        raise MissingPrerequisite(entry.missing_message(), entry.package)
    return found


def available(key: str, table: Mapping[str, Prerequisite] | None = None) -> bool:
    return (PREREQUISITES if table is None else table)[key].locate() is not None
