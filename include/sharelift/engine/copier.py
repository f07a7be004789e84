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
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Container, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from sharelift.engine.jobs import JobSpec
from sharelift.engine.manifest import Manifest, ManifestRow
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


def run_subtask(
    job: JobSpec,
    run_id: str,
    subtask: Subtask,
    manifest: Manifest,
    source: Source,
    destination: Destination,
    state: StateStore,
    *,
    progress: ProgressCallback | None = None,
    on_file: Callable[[OutcomeRow], None] | None = None,
    throttle: Throttle | None = None,
) -> Counter[str]:
    """Copy the subtask's files; returns counts by status (``previously-done`` included).

    ``throttle`` (flow control, docs/flow-control.md) is charged every byte read from the source,
    as it is read, so the job's limit bounds the network traffic from the file server.
    Whoever opened it closes it (``sharelift.engine.steps.copy``).
    """
    if throttle is not None:
        progress = _metered(throttle, progress)
    done = state.done_paths(job.name, run_id, subtask.index)
    recorded = state.get_run(job.name, run_id) or {}
    # Whole seconds, rounded down: HTTP dates (OSS Last-Modified) have no finer grain, and an
    # object stored in the second the run started is then taken for an earlier run's.
    since = int(recorded["started_at"]) + 1 if recorded.get("started_at") else None
    stored_since_ns = since * 1_000_000_000 if since else None
    counts: Counter[str] = Counter()
    pending: list[OutcomeRow] = []
    last_flush = time.monotonic()
    threads = copy_threads() if source.features.threaded_clones else 1

    with destination.batch() as commit:

        def flush() -> None:
            """Bytes first, then the record: a file is never recorded before it is safe."""
            nonlocal pending, last_flush
            commit()
            state.record(job.name, run_id, pending)
            pending = []
            last_flush = time.monotonic()

        def settle(out: OutcomeRow) -> None:
            counts[out.status] += 1
            pending.append(out)
            if out.status == "failed":
                log.warning("failed: %s: %s", out.path, out.reason)
            if on_file is not None:
                on_file(out)
            if len(pending) >= FLUSH_EVERY or time.monotonic() - last_flush > FLUSH_SECONDS:
                flush()

        with _Copier(
            source, destination, subtask.index, progress, threads, stored_since_ns
        ) as copier:
            rows = manifest.rows(subtask.start_row, subtask.stop_row)
            decided = _with_absence(rows, destination, done, job.dry_run)
            if threads == 1 and source.features.prefetch and not job.dry_run:
                decided = _announced(decided, source, source.features.prefetch)
            for row, known_absent in decided:
                if row.path in done:
                    counts["previously-done"] += 1
                    continue
                now = time.time()
                name = destination.object_name(row.path)
                if row.action == "skip":
                    reason, mtime = row.reason, row.mtime_ns
                    settle(_decided(row, name, subtask.index, "skipped", reason, mtime, now))
                elif row.action == "error":
                    settle(_decided(row, name, subtask.index, "failed", row.reason, None, now))
                elif job.dry_run:
                    reason = "dry run: nothing copied"
                    settle(_decided(row, name, subtask.index, "skipped", reason, row.mtime_ns, now))
                else:
                    for out in copier.submit(row, name, known_absent):
                        settle(out)
            for out in copier.drain():
                settle(out)
        flush()
    return counts


def _metered(throttle: Throttle, progress: ProgressCallback | None) -> ProgressCallback:
    if progress is None:
        return throttle.consume

    def both(nbytes: int) -> None:
        throttle.consume(nbytes)
        progress(nbytes)

    return both


def _decided(
    row: ManifestRow,
    name: str,
    subtask: int,
    status: str,
    reason: str,
    mtime: int | None,
    now: float,
) -> OutcomeRow:
    """An outcome known without touching the destination (skip, scan error, dry run)."""
    return OutcomeRow(row.path, name, subtask, status, row.size, mtime, None, reason, now, now)


def copy_threads() -> int:
    """Files of one subtask in flight at once (``SHARELIFT_COPY_THREADS``, default 4).

    A put is mostly waiting on the network, so a few threads per subtask keep the link
    busy even when the source's client holds the GIL while it reads.
    """
    try:
        return max(1, min(32, int(os.environ.get("SHARELIFT_COPY_THREADS", "4"))))
    except ValueError:
        return 4


class _Copier:
    """Copies files on a few threads, each with its own source connection (libnfs contexts
    and SMB sessions are not shared between threads); yields outcomes as they finish.
    In-flight files are bounded, so memory stays at a few parts per thread."""

    def __init__(
        self,
        source: Source,
        destination: Destination,
        subtask: int,
        progress: ProgressCallback | None,
        threads: int,
        stored_since_ns: int | None = None,
    ) -> None:
        self._stored_since_ns = stored_since_ns
        self._source = source
        self._destination = destination
        self._subtask = subtask
        self._progress = progress
        self._threads = threads
        self._local = threading.local()
        self._clones: list[Source] = []
        self._lock = threading.Lock()
        self._pool = (
            ThreadPoolExecutor(threads, thread_name_prefix="sharelift-copy")
            if threads > 1
            else None
        )
        self._in_flight: deque[Future[OutcomeRow]] = deque()

    def __enter__(self) -> _Copier:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        for clone in self._clones:
            clone.close()

    def _thread_source(self) -> Source:
        src = getattr(self._local, "source", None)
        if src is None:
            src = self._source.clone()
            with self._lock:
                self._clones.append(src)
            self._local.source = src
        return src

    def _copy(
        self, row: ManifestRow, name: str, known_absent: bool, source: Source | None = None
    ) -> OutcomeRow:
        entry = Entry(row.path, EntryKind.FILE, size=row.size, mtime_ns=row.mtime_ns, mode=row.mode)
        result = copy_file(
            source or self._thread_source(),
            self._destination,
            entry,
            row.path,
            progress=self._progress,
            known_absent=known_absent,
            stored_since_ns=self._stored_since_ns,
        )
        return OutcomeRow(
            row.path,
            name,
            self._subtask,
            result.status.value,
            result.size,
            row.mtime_ns,
            result.crc64,
            result.reason,
            result.started,
            result.finished,
            result.etag,
        )

    def submit(self, row: ManifestRow, name: str, known_absent: bool) -> Iterator[OutcomeRow]:
        if self._pool is None:
            yield self._copy(row, name, known_absent, self._source)
            return
        self._in_flight.append(self._pool.submit(self._copy, row, name, known_absent))
        while len(self._in_flight) >= 2 * self._threads:
            yield self._in_flight.popleft().result()
        while self._in_flight and self._in_flight[0].done():
            yield self._in_flight.popleft().result()

    def drain(self) -> Iterator[OutcomeRow]:
        while self._in_flight:
            yield self._in_flight.popleft().result()


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


def _announced(
    rows: Iterator[tuple[ManifestRow, bool]], source: Source, depth: int
) -> Iterator[tuple[ManifestRow, bool]]:
    """Yield ``rows`` unchanged while telling the source, ``depth`` rows ahead, which files
    will be opened (``Source.prefetch``). Only files known to be absent at the destination
    are announced: any other may be skipped after its HEAD, and reading it ahead would be
    wasted."""
    window: deque[tuple[ManifestRow, bool]] = deque()
    for item in rows:
        window.append(item)
        row, known_absent = item
        if known_absent:
            source.prefetch([row.path])
        if len(window) > depth:
            yield window.popleft()
    yield from window
