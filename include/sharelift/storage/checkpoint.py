"""The progress of one resumable multipart upload, kept in a file that only grows.

A 10,000-part object must not cost a rewrite of the whole record per part (quadratic in
the number of parts): the file holds one header line (which object, which upload) and then
one line per stored part, appended and flushed to disk as the part is stored.

    {"format": 2, "key": "prefix/big.bin", "size": ..., "mtime_ns": ..., "part_size": ...,
     "upload_id": "..."}
    {"n": 1, "etag": "...", "size": 262144, "crc": 1234}
    {"n": 2, ...}

Reading forgives what a crash can leave: a last line cut short (or any line that does not
parse) is ignored, costing at most a part sent again, since the uploader checks every
recorded part against the server's own list before it trusts it. Checkpoints of the older
format (one JSON object with a ``parts`` map, rewritten whole) are still read.

The class is the only place that knows the format: a checkpoint kept elsewhere (the state
database, the bucket) is another class with the same four methods.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

FORMAT = 2


@dataclass(frozen=True, slots=True)
class UploadHeader:
    """Which object and which multipart upload the recorded parts belong to."""

    key: str  # the object's full name in the bucket
    size: int
    mtime_ns: int | None
    part_size: int
    upload_id: str


@dataclass(frozen=True, slots=True)
class PartRecord:
    etag: str
    size: int
    crc: int


@dataclass(slots=True)
class Checkpoint:
    header: UploadHeader
    parts: dict[int, PartRecord] = field(default_factory=dict)


class CheckpointFile:
    """One upload's checkpoint file. ``record`` may be called from several threads only
    under the caller's lock (the uploader holds one)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"CheckpointFile({self.path!r})"

    def read(self) -> Checkpoint | None:
        """The recorded upload and parts; ``None`` when there is no usable checkpoint."""
        try:
            with open(self.path, "rb") as f:
                lines = f.read().split(b"\n")
        except OSError:
            return None
        first = _parse(lines[0])
        if first is None:
            return None
        header = _header(first)
        if header is None:
            return None
        cp = Checkpoint(header)
        if first.get("format") != FORMAT:  # format 1: every part in the one object
            for num, part in (first.get("parts") or {}).items():
                record = _part(part)
                if record is not None and str(num).isdigit():
                    cp.parts[int(num)] = record
            return cp
        for line in lines[1:]:
            item = _parse(line)  # a torn last line (a crash mid-write) does not parse
            if item is None or not isinstance(item.get("n"), int):
                continue
            record = _part(item)
            if record is not None:
                cp.parts[item["n"]] = record
        return cp

    def start(self, header: UploadHeader, parts: dict[int, PartRecord] | None = None) -> None:
        """Write a fresh checkpoint (replacing any other) for ``header``'s upload, with the
        parts already known (an older-format checkpoint carried over)."""
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        lines = [json.dumps({"format": FORMAT, **asdict(header)})]
        lines += [_line(n, p) for n, p in sorted((parts or {}).items())]
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def record(self, number: int, part: PartRecord) -> None:
        """Append one stored part: one short line, whatever the number of parts before."""
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(_line(number, part) + "\n")
            f.flush()
            os.fdatasync(f.fileno())

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def read_header(path: str) -> UploadHeader | None:
    """The header of the checkpoint at ``path`` without reading its parts (clean-up)."""
    try:
        with open(path, "rb") as f:
            first = _parse(f.readline())
    except OSError:
        return None
    return _header(first) if first is not None else None


def _line(number: int, part: PartRecord) -> str:
    return json.dumps({"n": number, **asdict(part)})


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        item = json.loads(line)
    except ValueError:
        return None
    return item if isinstance(item, dict) else None


def _header(item: dict[str, Any]) -> UploadHeader | None:
    try:
        return UploadHeader(
            key=str(item["key"]),
            size=int(item["size"]),
            mtime_ns=None if item.get("mtime_ns") is None else int(item["mtime_ns"]),
            part_size=int(item["part_size"]),
            upload_id=str(item["upload_id"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _part(item: Any) -> PartRecord | None:
    try:
        return PartRecord(etag=str(item["etag"]), size=int(item["size"]), crc=int(item["crc"]))
    except (KeyError, TypeError, ValueError):
        return None
