"""Copy one subtask: every manifest row in its range gets exactly one recorded outcome.

Idempotent: rows already recorded as copied or skipped for this run are not touched
again, so a retried or re-run subtask copies nothing twice. The overwrite rule (in
``sharelift.transfer``) also protects objects written by an earlier run. Outcomes are
written to the state database in batches as the subtask goes, so a crash loses at most
the last batch of records, never data at the destination.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable, Container, Iterator
from typing import Protocol

from sharelift.engine.jobs import JobSpec
from sharelift.engine.manifest import ManifestRow, iter_rows
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
    rows = iter_rows(manifest_path, subtask.start_row, subtask.stop_row)
    for row, known_absent in _with_absence(rows, destination, done, job.dry_run):
        if row.path in done:
            counts["previously-done"] += 1
            continue
        now = time.time()
        key = row.path
        name = object_name(destination, key)
        if row.action == "skip":
            out = OutcomeRow(
                row.path,
                name,
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
                row.path, name, subtask.index, "failed", row.size, None, None, row.reason, now, now
            )
        elif job.dry_run:
            out = OutcomeRow(
                row.path,
                name,
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
            result = copy_file(
                source, destination, entry, key, progress=progress, known_absent=known_absent
            )
            out = OutcomeRow(
                row.path,
                name,
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


EXISTENCE_BATCH = 500


def _with_absence(
    rows: Iterator[ManifestRow], destination: Destination, done: Container[str], dry_run: bool
) -> Iterator[tuple[ManifestRow, bool]]:
    """Pair each row with "the destination has no such object", known from one listing per
    folder and batch instead of a HEAD per file (on a first run every HEAD says 404: half of
    all requests). Objects that do exist still get their HEAD, for the metadata the
    overwrite rule compares. The listing is at most one batch old when a file is copied."""
    while True:
        batch = list(itertools.islice(rows, EXISTENCE_BATCH))
        if not batch:
            return
        keys = [r.path for r in batch if r.action == "copy" and r.path not in done]
        found = destination.existing(keys) if keys and not dry_run else None
        for row in batch:
            yield row, found is not None and row.action == "copy" and row.path not in found
