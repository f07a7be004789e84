"""Copying one file: the overwrite rule, the put, and the per-file outcome.

This is the smallest unit of the engine and the only place the overwrite rule
(docs/concepts.md) lives: a same-named destination object is replaced only when the source file is newer;
otherwise the file is skipped and the outcome says why. Every failure of one file becomes
an outcome, never an exception, so one bad file cannot fail its subtask. A file is copied
only when its bytes were read from one version of it (``_put_stable``) and the destination
proved it stored them (its CRC-64, checked by the destination's ``put``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import logging
import time
from dataclasses import dataclass

from sharelift.errors import FileError, ShareliftError, SourceFileChanged, scrub
from sharelift.storage import read_ahead, retrying
from sharelift.storage.base import (
    Destination,
    Entry,
    Fingerprint,
    ObjectInfo,
    ProgressCallback,
    PutResult,
    Source,
)
from sharelift.storage.retrying import RetryPolicy

log = logging.getLogger(__name__)


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
    retry: RetryPolicy | None = None,
    stored_since_ns: int | None = None,
) -> FileOutcome:
    """Copy one file if the overwrite rule allows it; never raises for a per-file problem.

    ``known_absent``: a fresh listing showed no object under ``key``, so no HEAD is needed.
    ``retry``: how transient failures are retried (default: the destination's
    ``TransferConfig.retry``). A failure that may pass (a server restarting, bytes damaged
    on the way) copies the whole file again within the file's budget; a file that changes
    while it is read is read again (see ``_put_stable``).

    ``stored_since_ns``: when the run started. An object that the overwrite rule would skip
    as "already migrated" but that was stored since then is this run's own put, never
    recorded (its process was killed before the record, and the run is resumed): it counts
    as copied once its CRC-64 is shown equal to the source's, read again, and is put again
    otherwise.
    """
    started = time.time()
    policy = retry or retrying.policy_of(destination)
    try:
        with retrying.file_scope(policy):
            existing = None if known_absent else destination.head(key)
            reason = skip_reason(entry, existing)
            if reason is not None and _own_unrecorded(entry, existing, stored_since_ns):
                assert existing is not None
                if existing.crc64 is not None and existing.crc64 == _source_crc(source, entry):
                    return FileOutcome(
                        entry.path,
                        key,
                        Status.COPIED,
                        existing.size,
                        crc64=existing.crc64,
                        started=started,
                        finished=time.time(),
                        etag=existing.etag,
                    )
                reason = None  # this run's own object, not shown exact: put it again
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
            result = retrying.call(
                lambda: _put_stable(source, destination, entry, key, policy, progress),
                transient=_worth_copying_again,
                what=f"copy of {entry.path!r}",
                whole_file=True,
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
        reason = f"I/O error: {exc.strerror or retrying.describe(exc)}"
    except Exception as exc:  # noqa: BLE001 - one file must never fail the subtask
        reason = retrying.describe(exc)
    # The file failed for good: leave no resumable upload of it behind (a killed process
    # never gets here, and its next run resumes instead). Its budget is spent, so the abort
    # gets a short one of its own; what it cannot remove, `sharelift cleanup` does.
    short = dataclasses.replace(policy, request_time=policy.max_wait, file_time=policy.max_wait)
    try:
        with retrying.file_scope(short):
            destination.abandon(key)
    except Exception as exc:  # noqa: BLE001 - the file's own failure is what is recorded
        log.warning(
            "could not remove the partial upload of %s (%s); `sharelift cleanup` will",
            key,
            scrub(retrying.describe(exc)),
        )
    return FileOutcome(
        entry.path,
        key,
        Status.FAILED,
        entry.size,
        reason=scrub(reason) or "failed without a reason from the library",
        started=started,
        finished=time.time(),
    )


def _own_unrecorded(entry: Entry, existing: ObjectInfo | None, since_ns: int | None) -> bool:
    """``existing`` has the file's size and mtime and was stored since the run started."""
    return (
        since_ns is not None
        and existing is not None
        and existing.stored_at_ns is not None
        and existing.stored_at_ns >= since_ns
        and existing.source_mtime_ns == entry.mtime_ns
        and existing.size == entry.size
    )


def _source_crc(source: Source, entry: Entry) -> int:
    """The CRC-64 of the file's bytes as they are now (a resumed run's proof of its object)."""
    from sharelift.checksum import Crc64

    crc = Crc64()
    chunk = max(64 * 1024, source.features.read_chunk_size)
    with source.open_entry(entry) as raw:
        while block := raw.read(chunk):
            crc.update(block)
    return crc.value


def _worth_copying_again(exc: BaseException) -> bool:
    return isinstance(exc, FileError) and exc.transient


def _put_stable(
    source: Source,
    destination: Destination,
    entry: Entry,
    key: str,
    policy: RetryPolicy,
    progress: ProgressCallback | None,
) -> PutResult:
    """Put the file, then prove it did not change while it was read.

    The fingerprint (size, mtime, change time) before the read is what the open told, or
    else what the scan saw; the one after is asked afresh while the file is still open. When
    they differ, the object just written may mix two versions: the file is read again (the
    object is replaced), up to ``policy.stable_reads`` times; then the object is removed and
    the file fails. A size that differs from the expected one shows earlier, as the reader
    counts bytes (``SourceFileChanged``), and is handled the same way.
    """
    before = Fingerprint(entry.size, entry.mtime_ns)
    written = False
    for _ in range(policy.stable_reads):
        # The read-ahead thread (large files, unless the source's stream or the
        # destination's put reads ahead by itself) stops before ``raw`` closes: it may be
        # reading.
        with source.open_entry(entry) as raw:
            opened = source.opened(raw)
            if opened is not None:
                before = opened
                entry = dataclasses.replace(entry, size=opened.size, mtime_ns=opened.mtime_ns)
            try:
                with (
                    read_ahead.ReadAhead(raw, source.features.read_chunk_size)
                    if entry.size >= read_ahead.MIN_SIZE
                    and not source.features.reads_ahead
                    and not destination.reads_ahead(entry.size)
                    else contextlib.nullcontext(raw) as stream
                ):
                    result = destination.put(
                        key,
                        stream,
                        entry.size,
                        source_mtime_ns=entry.mtime_ns,
                        mode=entry.mode,
                        progress=progress,
                    )
                written = True
            except SourceFileChanged:
                result = None
            after = source.fingerprint(raw, entry.path)
        if result is not None and not after.differs(before):
            return result
        before = after
        entry = dataclasses.replace(entry, size=after.size, mtime_ns=after.mtime_ns)
    if written:
        with contextlib.suppress(Exception):  # the failure below is what matters
            destination.delete(key)
    raise SourceFileChanged(
        entry.path,
        f"source file kept changing while being read ({policy.stable_reads} reads); "
        "nothing was stored",
    )
