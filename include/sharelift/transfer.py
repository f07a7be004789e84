"""Copying one file: the overwrite rule, the put, and the per-file outcome.

This is the smallest unit of the engine and the only place the overwrite rule
(docs/concepts.md) lives: a same-named destination object is replaced only when the source file is newer;
otherwise the file is skipped and the outcome says why. Every failure of one file becomes
an outcome, never an exception, so one bad file cannot fail its subtask.
"""

from __future__ import annotations

import contextlib
import enum
import time
from dataclasses import dataclass

from sharelift.errors import FileError, ShareliftError, scrub
from sharelift.storage import read_ahead
from sharelift.storage.base import Destination, Entry, ObjectInfo, ProgressCallback, Source


class Status(enum.StrEnum):
    COPIED = "copied"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class FileOutcome:
    path: str
    key: str
    status: Status
    size: int
    crc64: int | None = None
    reason: str = ""
    started: float = 0.0
    finished: float = 0.0
    etag: str | None = None


def skip_reason(entry: Entry, existing: ObjectInfo | None) -> str | None:
    """Why ``entry`` must not overwrite ``existing``; ``None`` when it should be copied."""
    if existing is None:
        return None
    if existing.source_mtime_ns is None:
        # An object sharelift did not write: compare with the time the destination stored it.
        if existing.last_modified_ns is not None and existing.last_modified_ns >= entry.mtime_ns:
            return "destination object exists and is not older than the source file"
        return None
    if existing.source_mtime_ns >= entry.mtime_ns:
        if existing.source_mtime_ns == entry.mtime_ns and existing.size == entry.size:
            return "already migrated: destination has the same size and modification time"
        return "destination object is not older than the source file"
    return None


def copy_file(
    source: Source,
    destination: Destination,
    entry: Entry,
    key: str,
    *,
    progress: ProgressCallback | None = None,
    known_absent: bool = False,
) -> FileOutcome:
    """Copy one file if the overwrite rule allows it; never raises for a per-file problem.

    ``known_absent``: a fresh listing showed no object under ``key``, so no HEAD is needed.
    """
    started = time.time()
    try:
        existing = None if known_absent else destination.head(key)
        reason = skip_reason(entry, existing)
        if reason is not None:
            return FileOutcome(
                entry.path,
                key,
                Status.SKIPPED,
                entry.size,
                reason=reason,
                started=started,
                finished=time.time(),
            )
        # The read-ahead thread (large files) stops before ``raw`` closes: it may be reading.
        with (
            source.open_entry(entry) as raw,
            read_ahead.ReadAhead(raw, source.features.read_chunk_size)
            if entry.size >= read_ahead.MIN_SIZE
            else contextlib.nullcontext(raw) as stream,
        ):
            result = destination.put(
                key,
                stream,
                entry.size,
                source_mtime_ns=entry.mtime_ns,
                mode=entry.mode,
                progress=progress,
            )
        return FileOutcome(
            entry.path,
            key,
            Status.COPIED,
            result.size,
            crc64=result.crc64,
            started=started,
            finished=time.time(),
            etag=result.etag,
        )
    except FileError as exc:
        reason = exc.reason
    except ShareliftError as exc:
        reason = str(exc)
    except OSError as exc:
        reason = f"I/O error: {exc.strerror or exc}"
    except Exception as exc:  # noqa: BLE001 - one file must never fail the subtask
        reason = f"{type(exc).__name__}: {exc}"
    return FileOutcome(
        entry.path,
        key,
        Status.FAILED,
        entry.size,
        reason=scrub(reason),
        started=started,
        finished=time.time(),
    )
