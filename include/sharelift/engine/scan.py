"""Scan: stream the source tree into a manifest, applying the start time point and filters.

Memory stays flat whatever the tree size: entries flow from the walk into the manifest's row
batches in the state database. What the run will not copy is recorded with the reason (symlinks, special files,
folders the server would not list); what the operator chose to leave out (filters, files
not newer than the start time point) is only counted, in the summary.

One entry never ends the scan: an entry whose name is not valid UTF-8 (it cannot be
stored, nor be an OSS key) becomes an error row under its escaped name (the rule of
``sharelift.engine.names``), and every error row keeps the size and mtime the listing
gave. Every entry the walk yields, folders apart, is counted once in ``files_seen`` and is
either a manifest row (copy, skip or error) or counted in ``left_out``:
``files_seen == rows + sum(left_out)``, which the report's summary restates.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sharelift.engine.filters import PathFilter
from sharelift.engine.jobs import JobSpec
from sharelift.engine.manifest import Manifest, ManifestRow
from sharelift.engine.names import NOT_UTF8_REASON, is_storable, storable_text, stored_path
from sharelift.storage.base import Entry, EntryKind, Source

ProgressFn = Callable[[int, int], None]  # (files seen so far, bytes seen so far)

# The manifest, the state database and OSS metadata hold mtimes as signed 64-bit ns.
_MIN_NS, _MAX_NS = -(2**63), 2**63 - 1
SYMLINK_REASON = "symlink: not followed (links are not migrated)"
SPECIAL_REASON = "special file (fifo, socket or device): not migrated"


@dataclass
class ScanResult:
    manifest: str
    files_to_copy: int = 0
    bytes_to_copy: int = 0
    files_seen: int = 0
    bytes_seen: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    left_out: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "manifest": self.manifest,
            "files_to_copy": self.files_to_copy,
            "bytes_to_copy": self.bytes_to_copy,
            "files_seen": self.files_seen,
            "bytes_seen": self.bytes_seen,
            "skipped": dict(self.skipped),
            "errors": self.errors,
            "left_out": dict(self.left_out),
            "seconds": round(self.seconds, 3),
        }


def scan(
    source: Source,
    job: JobSpec,
    manifest: Manifest,
    *,
    newer_than_ns: int | None = None,
    not_newer_than_ns: int | None = None,
    progress: ProgressFn | None = None,
    progress_every: float = 5.0,
) -> ScanResult:
    """Write ``manifest`` (afresh); ``newer_than_ns``/``not_newer_than_ns`` bound the mtime window.

    ``newer_than_ns`` defaults to the job's start time point (only files whose
    last-modified time is later than it).
    """
    lower = newer_than_ns if newer_than_ns is not None else job.start_time_ns
    keep = PathFilter(job.include, job.exclude)
    result = ScanResult(manifest=manifest.describe())
    writer = manifest.writer()
    started = last_report = time.monotonic()
    try:
        for entry in source.walk():
            if entry.kind is EntryKind.DIR and entry.error is None and is_storable(entry.path):
                continue  # a folder is not an entry to migrate; what is in it is
            result.files_seen += 1
            result.bytes_seen += entry.size
            if progress is not None and time.monotonic() - last_report >= progress_every:
                progress(result.files_seen, result.bytes_seen)
                last_report = time.monotonic()
            if not is_storable(entry.path):
                writer.add(_error_row(entry, stored_path(entry.path), NOT_UTF8_REASON))
                result.errors += 1
                continue
            if not _MIN_NS <= entry.mtime_ns <= _MAX_NS:
                clamped = dataclasses.replace(
                    entry, mtime_ns=min(max(entry.mtime_ns, _MIN_NS), _MAX_NS)
                )
                writer.add(_error_row(clamped, entry.path, _time_reason(entry.mtime_ns)))
                result.errors += 1
                continue
            if entry.error is not None:
                what = "folder" if entry.kind is EntryKind.DIR else "entry"
                said = entry.error if entry.error.startswith("cannot ") else None
                reason = storable_text(said or f"cannot read {what}: {entry.error}")
                writer.add(_error_row(entry, entry.path, reason))
                result.errors += 1
                continue
            if not keep(entry.path):
                result.left_out["excluded by include/exclude filters"] += 1
                continue
            if entry.kind is EntryKind.SYMLINK:
                writer.add(
                    ManifestRow(entry.path, 0, entry.mtime_ns, entry.mode, "skip", SYMLINK_REASON)
                )
                result.skipped[SYMLINK_REASON] += 1
                continue
            if entry.kind is EntryKind.OTHER:
                writer.add(
                    ManifestRow(entry.path, 0, entry.mtime_ns, entry.mode, "skip", SPECIAL_REASON)
                )
                result.skipped[SPECIAL_REASON] += 1
                continue
            if lower is not None and entry.mtime_ns <= lower:
                result.left_out["not modified after the start time point"] += 1
                continue
            if not_newer_than_ns is not None and entry.mtime_ns > not_newer_than_ns:
                result.left_out["modified after this run's window (next run takes it)"] += 1
                continue
            writer.add(ManifestRow(entry.path, entry.size, entry.mtime_ns, entry.mode, "copy"))
            result.files_to_copy += 1
            result.bytes_to_copy += entry.size
        writer.close()
    except BaseException:
        writer.abort()
        raise
    result.seconds = time.monotonic() - started
    if progress is not None:
        progress(result.files_seen, result.bytes_seen)
    return result


def _time_reason(mtime_ns: int) -> str:
    return (
        f"last-modified time {mtime_ns // 1_000_000_000} s since 1970 is outside what can be "
        "recorded (64-bit nanoseconds: 1677-09-21 to 2262-04-11): not migrated"
    )


def _error_row(entry: Entry, path: str, reason: str) -> ManifestRow:
    """An error row with what the listing gave (size, mtime, mode), not zeros."""
    return ManifestRow(path, entry.size, entry.mtime_ns, entry.mode, "error", reason)
