"""Copy one subtask: every manifest row in its range gets exactly one recorded outcome.

Idempotent: rows already recorded as copied or skipped for this run are not touched
again, so a retried or re-run subtask copies nothing twice. The overwrite rule (in
``sharelift.transfer``) also protects objects written by an earlier run. Outcomes are
written to the state database in batches as the subtask goes, so a crash loses at most
the last batch of records, never data at the destination.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Protocol

from sharelift.engine.jobs import JobSpec
from sharelift.engine.manifest import iter_rows
from sharelift.engine.partition import Subtask
from sharelift.engine.state import OutcomeRow, StateStore
from sharelift.storage.base import Destination, Entry, EntryKind, ProgressCallback, Source
from sharelift.transfer import copy_file

log = logging.getLogger(__name__)
FLUSH_EVERY = 200
FLUSH_SECONDS = 5.0


class Throttle(Protocol):
    """Meters the bytes read from the source (``sharelift.engine.flow_control.JobThrottle``)."""

    def consume(self, nbytes: int) -> None: ...

    def close(self) -> None: ...


def object_name(destination: Destination, key: str) -> str:
    """The full object name (prefix included) shown in reports."""
    prefix = getattr(getattr(destination, "address", None), "prefix", "") or ""
    return f"{prefix}{key}"


def run_subtask(
    job: JobSpec,
    run_id: str,
    subtask: Subtask,
    manifest_path: str,
    source: Source,
    destination: Destination,
    state: StateStore,
    *,
    progress: ProgressCallback | None = None,
    on_file: Callable[[OutcomeRow], None] | None = None,
    throttle: Throttle | None = None,
) -> Counter[str]:
    """Copy the subtask's files; returns counts by status (``previously-done`` included).

    ``throttle`` (flow control, SPEC section 5) is charged every byte read from the source,
    as it is read, so the job's limit bounds the network traffic from the file server.
    It is closed when the subtask ends, handing its share to the job's other subtasks.
    """
    if throttle is not None:
        progress = _metered(throttle, progress)
    try:
        return _run_subtask(
            job, run_id, subtask, manifest_path, source, destination, state, progress, on_file
        )
    finally:
        if throttle is not None:
            throttle.close()


def _metered(throttle: Throttle, progress: ProgressCallback | None) -> ProgressCallback:
    if progress is None:
        return throttle.consume

    def both(nbytes: int) -> None:
        throttle.consume(nbytes)
        progress(nbytes)

    return both


def _run_subtask(
    job: JobSpec,
    run_id: str,
    subtask: Subtask,
    manifest_path: str,
    source: Source,
    destination: Destination,
    state: StateStore,
    progress: ProgressCallback | None,
    on_file: Callable[[OutcomeRow], None] | None,
) -> Counter[str]:
    done = state.done_paths(job.name, run_id, subtask.index)
    counts: Counter[str] = Counter()
    pending: list[OutcomeRow] = []
    last_flush = time.monotonic()
    for row in iter_rows(manifest_path, subtask.start_row, subtask.stop_row):
        if row.path in done:
            counts["previously-done"] += 1
            continue
        now = time.time()
        key = row.path
        if row.action == "skip":
            out = OutcomeRow(
                row.path,
                object_name(destination, key),
                subtask.index,
                "skipped",
                row.size,
                row.mtime_ns,
                None,
                row.reason,
                now,
                now,
            )
        elif row.action == "error":
            out = OutcomeRow(
                row.path,
                object_name(destination, key),
                subtask.index,
                "failed",
                row.size,
                None,
                None,
                row.reason,
                now,
                now,
            )
        elif job.dry_run:
            out = OutcomeRow(
                row.path,
                object_name(destination, key),
                subtask.index,
                "skipped",
                row.size,
                row.mtime_ns,
                None,
                "dry run: nothing copied",
                now,
                now,
            )
        else:
            entry = Entry(
                row.path, EntryKind.FILE, size=row.size, mtime_ns=row.mtime_ns, mode=row.mode
            )
            result = copy_file(source, destination, entry, key, progress=progress)
            out = OutcomeRow(
                row.path,
                object_name(destination, key),
                subtask.index,
                result.status.value,
                result.size,
                row.mtime_ns,
                result.crc64,
                result.reason,
                result.started,
                result.finished,
            )
            if result.status.value == "failed":
                log.warning("failed: %s: %s", row.path, result.reason)
        counts[out.status] += 1
        pending.append(out)
        if on_file is not None:
            on_file(out)
        if len(pending) >= FLUSH_EVERY or time.monotonic() - last_flush > FLUSH_SECONDS:
            state.record(job.name, run_id, pending)
            pending = []
            last_flush = time.monotonic()
    state.record(job.name, run_id, pending)
    return counts
