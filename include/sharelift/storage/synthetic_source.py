"""A generated listing as a source: any number of files, none of them on a disk.

For the benchmark and tests of very large jobs (ten million entries: scan, partition and
the state database's bookkeeping), where building a real tree would cost more than the
run itself. Entry ``i`` is ``d<i // 1000>/f<i>.bin`` (a thousand files per folder), its
size ``i % 4096`` bytes, its bytes a repeated pattern derived from ``i``; the listing is
the same on every walk, so a copy of it is reproducible and verifiable.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

from sharelift.addresses import SourceAddress
from sharelift.errors import NotAFile, SourceFileNotFound
from sharelift.storage.base import Entry, EntryKind, ReadStream, Source, SourceFeatures

PER_FOLDER = 1000
MTIME_NS = 1_700_000_000 * 10**9
_FILE = re.compile(r"^d(\d{5,})/f(\d{8,})\.bin$")


def file_path(i: int) -> str:
    return f"d{i // PER_FOLDER:05d}/f{i:08d}.bin"


def file_size(i: int) -> int:
    return i % 4096


def file_bytes(i: int) -> bytes:
    pattern = f"{i:08d}\n".encode()
    size = file_size(i)
    return (pattern * (size // len(pattern) + 1))[:size]


class SyntheticSource(Source):
    scheme = "synthetic"
    features = SourceFeatures()

    def __init__(self, address: SourceAddress) -> None:
        self.address = address
        self.count = int(address.share)

    def display_url(self, path: str = "") -> str:
        return f"synthetic:///{self.count}/{path}".rstrip("/")

    def check(self) -> None:
        """Always usable: there is no server."""

    def _index(self, path: str) -> int:
        found = _FILE.match(path)
        if found is None:
            raise SourceFileNotFound(path, "no such file in the generated listing")
        i = int(found.group(2))
        if i >= self.count or found.group(1) != f"{i // PER_FOLDER:05d}":
            raise SourceFileNotFound(path, "no such file in the generated listing")
        return i

    def walk(self, top: str = "") -> Iterator[Entry]:
        for i in range(self.count):
            if i % PER_FOLDER == 0:
                yield Entry(f"d{i // PER_FOLDER:05d}", EntryKind.DIR, mtime_ns=MTIME_NS)
            yield Entry(file_path(i), EntryKind.FILE, file_size(i), MTIME_NS + i, 0o100644)

    def stat(self, path: str) -> Entry:
        if re.fullmatch(r"d\d{5,}", path):
            return Entry(path, EntryKind.DIR, mtime_ns=MTIME_NS)
        i = self._index(path)
        return Entry(path, EntryKind.FILE, file_size(i), MTIME_NS + i, 0o100644)

    def open(self, path: str) -> ReadStream:
        if re.fullmatch(r"d\d{5,}", path):
            raise NotAFile(path, "is a folder")
        return io.BytesIO(file_bytes(self._index(path)))  # type: ignore[return-value]

    def clone(self) -> SyntheticSource:
        return SyntheticSource(self.address)
